/* hf_gpt_oss.c - gpt-oss's experts from a Hugging Face directory, converted
 * once into a cache file (layouts and the cache: hf_gpt_oss.h). */
#include "formats/hf/hf_gpt_oss.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant/qtype.h"
#include "util/ckmath.h"
#include "util/fileio.h"
#include "util/fp16.h"
#include "util/hashtab.h"
#include "util/mapfile.h"

#define CACHE_MAGIC "SMKHFX01"
#define CACHE_VERSION "smoke hf-convert 1 gpt-oss"
#define CACHE_ALIGN 4096u
#define HDR_FIXED 32u   /* magic[8], u64 ident_len, u64 data_off, u64 data_bytes */
#define MAX_IDENT (64u << 20)

struct hf_oss_cache {
	const uint8_t *base;
	uint64_t size;
};

void hf_oss_cache_close(struct hf_oss_cache *c)
{
	if (!c)
		return;
	if (c->base)
		smk_unmap_file(c->base, c->size);
	free(c);
}

static const char *const expert_names[] = {
	"gate_up_proj", "down_proj", "gate_up_proj_blocks", "gate_up_proj_scales",
	"down_proj_blocks", "down_proj_scales", "gate_up_proj_bias", "down_proj_bias",
};

bool hf_oss_is_expert_tensor(const char *rest)
{
	const char *p = "mlp.experts.";
	if (strncmp(rest, p, strlen(p)))
		return false;
	for (size_t i = 0; i < sizeof(expert_names) / sizeof(expert_names[0]); i++)
		if (!strcmp(rest + strlen(p), expert_names[i]))
			return true;
	return false;
}

/* One converted slab: what it is made of and where it goes in the file. */
enum slab_kind { SLAB_GATE, SLAB_UP, SLAB_DOWN };

struct slab {
	int layer;
	enum slab_kind kind;
	bool mxfp4;
	const struct st_tensor *w;        /* dense matrix, or MXFP4 blocks */
	const struct st_tensor *scales;   /* MXFP4 only */
	uint32_t type;                    /* qtype of the result */
	uint64_t ne0, ne1;                /* one expert's matrix: ne1 rows of ne0 */
	uint64_t per_expert, offset;      /* bytes; offset from the file's start */
};

struct conv {
	const struct st_set *set;
	const struct hf_oss_shape *sh;
	struct smk_err *err;
	struct slab *slabs;
	int n_slabs;
};

static const char *tensor_file(const struct conv *c, const char *name)
{
	int fi = 0;
	if (!st_set_find(c->set, name, &fi))
		return st_set_dir(c->set);
	return st_path(st_set_file(c->set, fi));
}

static int tfail(const struct conv *c, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int tfail(const struct conv *c, const char *name, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return smk_fail(c->err, -EINVAL, "%s: tensor '%s': %s", tensor_file(c, name), name, why);
}

static const struct st_tensor *find(const struct conv *c, int il, const char *what, char *name,
				    size_t cap)
{
	snprintf(name, cap, "model.layers.%d.mlp.experts.%s", il, what);
	return st_set_find(c->set, name, NULL);
}

static void shape_str(const struct st_tensor *t, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
	for (int d = 0; d < t->n_dims && n < cap; d++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%" PRIu64, d ? ", " : "", t->shape[d]);
}

/* t must have exactly the n dims in want[]. */
static int check_shape(const struct conv *c, const char *name, const struct st_tensor *t, int n,
		       const uint64_t *want, const char *dims)
{
	bool ok = t->n_dims == n;
	for (int d = 0; ok && d < n; d++)
		ok = t->shape[d] == want[d];
	if (ok)
		return 0;
	char got[128];
	shape_str(t, got, sizeof(got));
	return tfail(c, name, "shape [%s], expected %s", got, dims);
}

static bool is_float(enum st_dtype d)
{
	return d == ST_F32 || d == ST_F16 || d == ST_BF16;
}

static uint32_t float_qtype(enum st_dtype d)
{
	return d == ST_F32 ? QTYPE_F32 : d == ST_F16 ? QTYPE_F16 : QTYPE_BF16;
}

static float load_float(const struct st_tensor *t, uint64_t i)
{
	if (t->dtype == ST_F32) {
		float f;
		memcpy(&f, (const uint8_t *)t->data + 4 * i, 4);
		return f;
	}
	uint16_t u;
	memcpy(&u, (const uint8_t *)t->data + 2 * i, 2);
	return t->dtype == ST_F16 ? fp16_to_fp32(u) : bf16_to_fp32(u);
}

/* The slabs of projection gate_up (two: gate, up) or down of layer il. */
static int plan_proj(struct conv *c, int il, bool down)
{
	const struct hf_oss_shape *sh = c->sh;
	const uint64_t E = (uint64_t)sh->n_expert, H = (uint64_t)sh->n_embd, I = (uint64_t)sh->n_ff;
	const char *p = down ? "down_proj" : "gate_up_proj";
	const uint64_t in = down ? I : H, out = down ? H : 2 * I;
	char n_w[160], n_b[160], n_s[160], what[64];
	const struct st_tensor *w = find(c, il, p, n_w, sizeof(n_w));
	snprintf(what, sizeof(what), "%s_blocks", p);
	const struct st_tensor *blk = find(c, il, what, n_b, sizeof(n_b));
	snprintf(what, sizeof(what), "%s_scales", p);
	const struct st_tensor *sc = find(c, il, what, n_s, sizeof(n_s));
	struct slab s = { .layer = il };
	char dims[320];
	int rc;
	if (w && (blk || sc))
		return tfail(c, n_w, "the directory holds both this dense matrix and MXFP4 %s_blocks/_scales", p);
	if (w) {
		if (!is_float(w->dtype))
			return tfail(c, n_w, "dtype %s; dense expert weights must be F32, F16 or BF16",
				     st_dtype_name(w->dtype));
		/* input-major: [E, in, out] */
		const uint64_t want[3] = { E, in, out };
		snprintf(dims, sizeof(dims), "[%" PRIu64 ", %" PRIu64 ", %" PRIu64 "] (num_local_experts, %s)",
			 E, in, out, down ? "intermediate_size, hidden_size" : "hidden_size, 2 * intermediate_size");
		if ((rc = check_shape(c, n_w, w, 3, want, dims)))
			return rc;
		s.w = w;
		s.type = float_qtype(w->dtype);
	} else if (blk || sc) {
		if (!blk)
			return tfail(c, n_s, "its blocks tensor '%s' is missing", n_b);
		if (!sc)
			return tfail(c, n_b, "its scales tensor '%s' is missing", n_s);
		if (blk->dtype != ST_U8 || sc->dtype != ST_U8)
			return tfail(c, blk->dtype != ST_U8 ? n_b : n_s, "dtype %s; MXFP4 blocks and scales are U8",
				     st_dtype_name(blk->dtype != ST_U8 ? blk->dtype : sc->dtype));
		if (in % 32)
			return tfail(c, n_b, "MXFP4 needs the input dimension (%" PRIu64 ") to be a multiple of 32", in);
		const uint64_t g = in / 32;
		const uint64_t wb[4] = { E, out, g, 16 }, ws[3] = { E, out, g };
		snprintf(dims, sizeof(dims), "[%" PRIu64 ", %" PRIu64 ", %" PRIu64 ", 16] (experts, rows, %s / 32, 16 bytes)",
			 E, out, g, down ? "intermediate_size" : "hidden_size");
		if ((rc = check_shape(c, n_b, blk, 4, wb, dims)))
			return rc;
		snprintf(dims, sizeof(dims), "[%" PRIu64 ", %" PRIu64 ", %" PRIu64 "] (one scale per block of '%s')",
			 E, out, g, n_b);
		if ((rc = check_shape(c, n_s, sc, 3, ws, dims)))
			return rc;
		s.mxfp4 = true;
		s.w = blk;
		s.scales = sc;
		s.type = QTYPE_MXFP4;
	} else {
		return smk_fail(c->err, -EINVAL, "%s: tensor '%s' is missing (or MXFP4 '%s_blocks' and '%s_scales')",
				st_set_dir(c->set), n_w, n_w, n_w);
	}
	s.ne0 = in;
	s.ne1 = down ? H : I;
	uint64_t row;
	if (s.mxfp4)
		row = in / 32 * sizeof(struct qtype_block_mxfp4);
	else
		row = in * st_dtype_size(s.w->dtype);
	if (ck_mul(row, s.ne1, &s.per_expert))
		return tfail(c, n_w, "size overflows");
	for (int k = 0; k < (down ? 1 : 2); k++) {
		s.kind = down ? SLAB_DOWN : k ? SLAB_UP : SLAB_GATE;
		c->slabs[c->n_slabs++] = s;
	}
	return 0;
}

/* Expert e's matrix of slab s into dst (s->per_expert bytes).  Every source
 * index is in range: the shapes were checked against H, I and E. */
static int convert_expert(const struct conv *c, const struct slab *s, uint64_t e, uint8_t *dst)
{
	const uint64_t rows = s->ne1, in = s->ne0;
	const int par = s->kind == SLAB_UP;
	const bool gu = s->kind != SLAB_DOWN;
	if (s->mxfp4) {
		const uint64_t g = in / 32, R = s->w->shape[1];
		const uint8_t *blocks = s->w->data, *scales = s->scales->data;
		for (uint64_t r = 0; r < rows; r++) {
			const uint64_t src_row = gu ? 2 * r + (uint64_t)par : r;
			const uint8_t *b = blocks + (e * R + src_row) * g * 16;
			const uint8_t *sc = scales + (e * R + src_row) * g;
			for (uint64_t k = 0; k < g; k++) {
				struct qtype_block_mxfp4 q;
				if (sc[k] == 0xFF)
					return tfail(c, s->scales->name, "scale 0xFF (NaN in the OCP MX format) at "
						     "expert %" PRIu64 ", row %" PRIu64 ", block %" PRIu64,
						     e, src_row, k);
				q.e = sc[k];
				const uint8_t *src = b + 16 * k;
				for (int j = 0; j < 16; j++) {
					/* element m is nibble (m & 1) of byte m / 2 */
					const int lo = (src[j >> 1] >> ((j & 1) * 4)) & 15;
					const int hi = (src[(j + 16) >> 1] >> (((j + 16) & 1) * 4)) & 15;
					q.qs[j] = (uint8_t)(lo | hi << 4);
				}
				memcpy(dst + (r * g + k) * sizeof(q), &q, sizeof(q));
			}
		}
		return 0;
	}
	/* dense, input-major [E, in, out]: dst row r, column i = src[e][i][col],
	 * a transpose done in 32 x 32 tiles (a 20b layer's column walk would
	 * otherwise miss the cache at every element: 5x slower) */
	const size_t es = st_dtype_size(s->w->dtype);
	const uint64_t out = s->w->shape[2], T = 32;
	const uint8_t *src = (const uint8_t *)s->w->data + e * in * out * es;
	for (uint64_t r0 = 0; r0 < rows; r0 += T) {
		const uint64_t r1 = r0 + T < rows ? r0 + T : rows;
		for (uint64_t i0 = 0; i0 < in; i0 += T) {
			const uint64_t i1 = i0 + T < in ? i0 + T : in;
			for (uint64_t i = i0; i < i1; i++) {
				const uint8_t *sp = src + i * out * es;
				for (uint64_t r = r0; r < r1; r++) {
					const uint64_t col = gu ? 2 * r + (uint64_t)par : r;
					if (es == 2)
						memcpy(dst + (r * in + i) * 2, sp + col * 2, 2);
					else
						memcpy(dst + (r * in + i) * 4, sp + col * 4, 4);
				}
			}
		}
	}
	return 0;
}

static const char *slab_suffix(enum slab_kind k)
{
	return k == SLAB_GATE ? "ffn_gate_exps" : k == SLAB_UP ? "ffn_up_exps" : "ffn_down_exps";
}

/* ---- the cache file --------------------------------------------------- */

struct text {
	char *p;
	size_t n, cap;
	bool oom;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		if (t->oom)
			return;
		va_start(ap, fmt);
		int w = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? t->cap - t->n : 0, fmt, ap);
		va_end(ap);
		if (w < 0) {
			t->oom = true;
			return;
		}
		if (t->p && t->n + (size_t)w < t->cap) {
			t->n += (size_t)w;
			return;
		}
		size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)w;
		char *p = realloc(t->p, cap);
		if (!p) {
			t->oom = true;
			return;
		}
		t->p = p;
		t->cap = cap;
	}
}

/* ${SMOKE_CACHE:-$HOME/.cache/smoke}/hf-convert, created if missing. */
static int cache_dir(char *out, size_t cap, struct smk_err *err)
{
	const char *base = getenv("SMOKE_CACHE");
	char tmp[PATH_MAX];
	if (!base || !*base) {
		const char *home = getenv("HOME");
		if (!home || !*home)
			return smk_fail(err, -ENOENT, "gpt-oss expert conversion: neither SMOKE_CACHE nor HOME is set "
					"(the converted experts need a cache folder)");
		snprintf(tmp, sizeof(tmp), "%s/.cache/smoke", home);
		base = tmp;
	}
	if ((size_t)snprintf(out, cap, "%s/hf-convert", base) >= cap)
		return smk_fail(err, -ENAMETOOLONG, "%s/hf-convert: path too long", base);
	/* mkdir -p */
	for (char *p = out + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(out, 0755) && errno != EEXIST) {
			int e = errno;
			*p = saved;
			return smk_fail(err, -e, "%s: cannot create the conversion cache folder: %s "
					"(set SMOKE_CACHE to a writable folder)", out, strerror(e));
		}
		*p = saved;
		if (!saved)
			break;
	}
	return 0;
}

/* The mapped file at path if its header says it holds exactly ident and
 * data_bytes at data_off; 1 if absent or stale, <0 on error. */
static int cache_try(const char *path, const struct text *ident, uint64_t data_off, uint64_t data_bytes,
		     struct hf_oss_cache *c)
{
	struct smk_err e2 = { 0 };
	const uint8_t *base;
	uint64_t size;
	if (smk_map_file(path, "empty", &base, &size, &e2))
		return 1;
	uint64_t il, off, nb;
	bool ok = size >= HDR_FIXED && !memcmp(base, CACHE_MAGIC, 8);
	if (ok) {
		memcpy(&il, base + 8, 8);
		memcpy(&off, base + 16, 8);
		memcpy(&nb, base + 24, 8);
		ok = il == ident->n && off == data_off && nb == data_bytes && size - HDR_FIXED >= il &&
		     !memcmp(base + HDR_FIXED, ident->p, il) && size >= off && size - off == nb;
	}
	if (!ok) {
		smk_unmap_file(base, size);
		return 1;
	}
	c->base = base;
	c->size = size;
	return 0;
}

/* Drop expert e's part (of n) of a source tensor from the mapping
 * (MAP_PRIVATE, read-only: pages are read again from the file if touched
 * later).  Only whole pages inside that part. */
static void drop_pages(const struct st_tensor *t, uint64_t e, uint64_t n)
{
	if (!t || !t->nbytes)
		return;
	const uint64_t per = t->nbytes / n;
	const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	const uintptr_t lo = (uintptr_t)t->data + (uintptr_t)(e * per);
	uintptr_t a = (lo + pg - 1) / pg * pg;
	uintptr_t b = (lo + (uintptr_t)per) / pg * pg;
	if (b > a)
		madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Old files of the same directory (another identity) are stale. */
static void remove_stale(const char *dir, const char *prefix, const char *keep)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t pl = strlen(prefix);
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, prefix, pl) || !strcmp(de->d_name, keep) ||
		    strstr(de->d_name, ".tmp."))
			continue;
		char p[PATH_MAX];
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) < sizeof(p))
			unlink(p);
	}
	if (d)
		closedir(d);
}

static int cache_write(struct conv *c, const char *final, const struct text *ident, uint64_t data_off,
		       uint64_t data_bytes)
{
	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", final) >= sizeof(tmp))
		return smk_fail(c->err, -ENAMETOOLONG, "%s: path too long", final);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return smk_fail(c->err, -errno, "%s: cannot create: %s", tmp, strerror(errno));
	uint64_t max = 0;
	for (int i = 0; i < c->n_slabs; i++)
		if (c->slabs[i].per_expert > max)
			max = c->slabs[i].per_expert;
	uint8_t *buf = NULL;
	int rc = 0;
	uint8_t hdr[HDR_FIXED];
	memcpy(hdr, CACHE_MAGIC, 8);
	uint64_t il = ident->n;
	memcpy(hdr + 8, &il, 8);
	memcpy(hdr + 16, &data_off, 8);
	memcpy(hdr + 24, &data_bytes, 8);
	if (max > SIZE_MAX || !(buf = malloc(max ? (size_t)max : 1))) {
		rc = smk_fail(c->err, -ENOMEM, "out of memory for one expert matrix (%" PRIu64 " bytes)", max);
		goto out;
	}
	if (ftruncate(fd, (off_t)(data_off + data_bytes))) {
		rc = smk_fail(c->err, -errno, "%s: cannot size to %" PRIu64 " bytes: %s", tmp,
			      data_off + data_bytes, strerror(errno));
		goto out;
	}
	if ((rc = smk_pwrite_all(fd, hdr, sizeof(hdr), 0)) ||
	    (rc = smk_pwrite_all(fd, ident->p, ident->n, HDR_FIXED))) {
		rc = smk_fail(c->err, rc, "%s: write: %s", tmp, strerror(-rc));
		goto out;
	}
	/* Gate and up read the same source (interleaved rows): convert them
	 * together, expert by expert, and let each expert's source pages go
	 * once written, so that converting 12 GB leaves at most one expert's
	 * source in this process's resident set. */
	for (int i = 0; i < c->n_slabs;) {
		const int n = i + 1 < c->n_slabs && c->slabs[i + 1].w == c->slabs[i].w ? 2 : 1;
		const struct slab *s0 = &c->slabs[i];
		for (uint64_t e = 0; e < (uint64_t)c->sh->n_expert; e++) {
			for (int k = 0; k < n; k++) {
				const struct slab *s = &c->slabs[i + k];
				if ((rc = convert_expert(c, s, e, buf)))
					goto out;
				if ((rc = smk_pwrite_all(fd, buf, (size_t)s->per_expert, s->offset + e * s->per_expert))) {
					rc = smk_fail(c->err, rc, "%s: write: %s", tmp, strerror(-rc));
					goto out;
				}
			}
			drop_pages(s0->w, e, (uint64_t)c->sh->n_expert);
			drop_pages(s0->scales, e, (uint64_t)c->sh->n_expert);
		}
		i += n;
	}
	if (fsync(fd)) {
		rc = smk_fail(c->err, -errno, "%s: fsync: %s", tmp, strerror(errno));
		goto out;
	}
	if (rename(tmp, final)) {
		rc = smk_fail(c->err, -errno, "%s: cannot rename to %s: %s", tmp, final, strerror(errno));
		goto out;
	}
out:
	free(buf);
	close(fd);
	if (rc)
		unlink(tmp);
	return rc;
}

/* ---- the entry point -------------------------------------------------- */

static int add_biases(struct conv *c, struct gguf_builder *b, int il)
{
	const struct hf_oss_shape *sh = c->sh;
	const uint64_t E = (uint64_t)sh->n_expert, H = (uint64_t)sh->n_embd, I = (uint64_t)sh->n_ff;
	char n_gu[160], n_d[160], dims[96];
	const struct st_tensor *gu = find(c, il, "gate_up_proj_bias", n_gu, sizeof(n_gu));
	const struct st_tensor *dn = find(c, il, "down_proj_bias", n_d, sizeof(n_d));
	if (!gu || !dn)
		return smk_fail(c->err, -EINVAL, "%s: tensor '%s' is missing (gpt-oss's experts have biases)",
				st_set_dir(c->set), gu ? n_d : n_gu);
	int rc;
	const uint64_t wgu[2] = { E, 2 * I }, wd[2] = { E, H };
	snprintf(dims, sizeof(dims), "[%" PRIu64 ", %" PRIu64 "] (num_local_experts, 2 * intermediate_size)", E, 2 * I);
	if ((rc = check_shape(c, n_gu, gu, 2, wgu, dims)))
		return rc;
	snprintf(dims, sizeof(dims), "[%" PRIu64 ", %" PRIu64 "] (num_local_experts, hidden_size)", E, H);
	if ((rc = check_shape(c, n_d, dn, 2, wd, dims)))
		return rc;
	if (!is_float(gu->dtype) || !is_float(dn->dtype))
		return tfail(c, is_float(gu->dtype) ? n_d : n_gu, "dtype %s; biases must be F32, F16 or BF16",
			     st_dtype_name(is_float(gu->dtype) ? dn->dtype : gu->dtype));
	float *g = gguf_builder_alloc(b, sizeof(float) * (size_t)(E * I));
	float *u = gguf_builder_alloc(b, sizeof(float) * (size_t)(E * I));
	float *d = gguf_builder_alloc(b, sizeof(float) * (size_t)(E * H));
	if (!g || !u || !d)
		return smk_fail(c->err, -ENOMEM, "out of memory");
	for (uint64_t e = 0; e < E; e++) {
		for (uint64_t j = 0; j < I; j++) {
			g[e * I + j] = load_float(gu, e * 2 * I + 2 * j);
			u[e * I + j] = load_float(gu, e * 2 * I + 2 * j + 1);
		}
		for (uint64_t h = 0; h < H; h++)
			d[e * H + h] = load_float(dn, e * H + h);
	}
	char name[96];
	uint64_t ne[2] = { I, E };
	snprintf(name, sizeof(name), "blk.%d.ffn_gate_exps.bias", il);
	gguf_builder_add_tensor(b, name, QTYPE_F32, 2, ne, g, -1, 0);
	snprintf(name, sizeof(name), "blk.%d.ffn_up_exps.bias", il);
	gguf_builder_add_tensor(b, name, QTYPE_F32, 2, ne, u, -1, 0);
	ne[0] = H;
	snprintf(name, sizeof(name), "blk.%d.ffn_down_exps.bias", il);
	gguf_builder_add_tensor(b, name, QTYPE_F32, 2, ne, d, -1, 0);
	return 0;
}

int hf_oss_experts(struct gguf_builder *b, const struct st_set *set, const char *dir,
		   const struct hf_oss_shape *sh, struct hf_oss_cache **cache, struct smk_err *err)
{
	*cache = NULL;
	struct conv c = { .set = set, .sh = sh, .err = err };
	struct text ident = { 0 };
	struct hf_oss_cache *hc = NULL;
	char *real = NULL;
	int rc = 0;
	if (!(c.slabs = calloc((size_t)sh->n_layer * 3, sizeof(*c.slabs))) || !(hc = calloc(1, sizeof(*hc)))) {
		rc = smk_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (int il = 0; il < sh->n_layer; il++)
		if ((rc = plan_proj(&c, il, false)) || (rc = plan_proj(&c, il, true)) ||
		    (rc = add_biases(&c, b, il)))
			goto out;

	/* The identity: what the converted bytes are derived from. */
	if (!(real = realpath(dir, NULL))) {
		rc = smk_fail(err, -errno, "%s: realpath: %s", dir, strerror(errno));
		goto out;
	}
	text_add(&ident, "%s\ndir %s\n", CACHE_VERSION, real);
	for (int i = 0; i < st_set_n_files(set); i++) {
		const char *p = st_path(st_set_file(set, i));
		struct stat st;
		if (stat(p, &st)) {
			rc = smk_fail(err, -errno, "%s: stat: %s", p, strerror(errno));
			goto out;
		}
		const char *base = strrchr(p, '/');
		text_add(&ident, "file %s %lld %lld.%09ld %llu\n", base ? base + 1 : p, (long long)st.st_size,
			 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (unsigned long long)st.st_ino);
	}
	/* The slab lines are part of the identity, but their offsets depend
	 * on its length: size the header from an upper bound (a slab line
	 * is under 256 bytes), checked once the lines are written. */
	uint64_t data_off = 0, pos;
	if (ident.oom || ck_align(HDR_FIXED + (uint64_t)ident.n + 256u * (uint64_t)c.n_slabs, CACHE_ALIGN,
				  &data_off) || data_off > MAX_IDENT) {
		rc = smk_fail(err, ident.oom ? -ENOMEM : -EINVAL, "%s: the conversion cache header: %s", dir,
			      ident.oom ? "out of memory" : "too long");
		goto out;
	}
	pos = data_off;
	for (int i = 0; i < c.n_slabs; i++) {
		struct slab *s = &c.slabs[i];
		uint64_t n;
		if (ck_mul(s->per_expert, (uint64_t)sh->n_expert, &n) || ck_align(pos, CACHE_ALIGN, &pos)) {
			rc = smk_fail(err, -EINVAL, "%s: converted experts' size overflows", dir);
			goto out;
		}
		s->offset = pos;
		text_add(&ident, "slab blk.%d.%s.weight %s %" PRIu64 " %" PRIu64 " %d %" PRIu64 " %" PRIu64 "\n",
			 s->layer, slab_suffix(s->kind), qtype_name(s->type), s->ne0, s->ne1, sh->n_expert,
			 s->offset, n);
		if (ck_add(pos, n, &pos)) {
			rc = smk_fail(err, -EINVAL, "%s: converted experts' size overflows", dir);
			goto out;
		}
	}
	if (ident.oom || HDR_FIXED + ident.n > data_off) {
		rc = smk_fail(err, -ENOMEM, "%s: conversion cache header: out of memory or too long", dir);
		goto out;
	}
	const uint64_t data_bytes = pos - data_off;

	char cdir[PATH_MAX], final[PATH_MAX + 128], prefix[64], fname[96];
	if ((rc = cache_dir(cdir, sizeof(cdir), err)))
		goto out;
	snprintf(prefix, sizeof(prefix), "gpt-oss-%016" PRIx64 "-", smk_fnv1a64(real, strlen(real)));
	snprintf(fname, sizeof(fname), "%s%016" PRIx64 ".smkx", prefix, smk_fnv1a64(ident.p, ident.n));
	snprintf(final, sizeof(final), "%s/%s", cdir, fname);
	rc = cache_try(final, &ident, data_off, data_bytes, hc);
	if (rc == 1) {
		if ((rc = cache_write(&c, final, &ident, data_off, data_bytes)))
			goto out;
		remove_stale(cdir, prefix, fname);
		int dfd = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);   /* the rename durable; best effort */
			close(dfd);
		}
		if ((rc = cache_try(final, &ident, data_off, data_bytes, hc)) == 1)
			rc = smk_fail(err, -EIO, "%s: the conversion cache file just written does not read back", final);
		if (rc)
			goto out;
	}
	int src = gguf_builder_add_source(b, final);
	if (src < 0) {
		rc = smk_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < c.n_slabs; i++) {
		const struct slab *s = &c.slabs[i];
		char name[96];
		snprintf(name, sizeof(name), "blk.%d.%s.weight", s->layer, slab_suffix(s->kind));
		uint64_t ne[3] = { s->ne0, s->ne1, (uint64_t)sh->n_expert };
		gguf_builder_add_tensor(b, name, s->type, 3, ne, hc->base + s->offset, src, s->offset);
	}
	*cache = hc;
	hc = NULL;
out:
	hf_oss_cache_close(hc);
	free(real);
	free(ident.p);
	free(c.slabs);
	return rc;
}
