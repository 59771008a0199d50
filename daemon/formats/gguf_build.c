/* gguf_build.c - assemble a GGUF handle in memory (see gguf_build.h).
 *
 * The metadata is appended to one growing byte buffer in GGUF v3 layout; the
 * tensor infos go to a second one.  finish() joins header + metadata +
 * tensor infos into the image gguf.c parses in "external" mode, then points
 * each parsed tensor at the bytes the caller named. */
#include "formats/gguf_build.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf_priv.h"
#include "quant/qtype.h"

#define BUILD_ALIGN 64

struct buf {
	uint8_t *p;
	size_t n, cap;
};

struct btensor {
	const void *data;
	int source;
	uint64_t file_offset;
};

struct gguf_builder {
	char *path;
	struct buf kv, ti;
	uint64_t n_kv, n_tensors;
	uint64_t str_left;          /* strings still owed to begin_str_arr */
	struct btensor *tens;
	size_t tens_cap;
	char **sources;
	int n_sources;
	void **owned;
	size_t n_owned, owned_cap;
	uint64_t data_off;          /* virtual offsets, so the infos are well-formed */
	void (*on_close)(void *);
	void *on_close_arg;
	int rc;
	char msg[256];
};

__attribute__((format(printf, 3, 4)))
static void bfail(struct gguf_builder *b, int rc, const char *fmt, ...)
{
	if (b->rc)
		return;
	b->rc = rc;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->msg, sizeof(b->msg), fmt, ap);
	va_end(ap);
}

static void put(struct gguf_builder *b, struct buf *o, const void *p, size_t n)
{
	if (b->rc)
		return;
	if (o->n + n > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap < o->n + n)
			cap *= 2;
		uint8_t *q = realloc(o->p, cap);
		if (!q) {
			bfail(b, -ENOMEM, "out of memory");
			return;
		}
		o->p = q;
		o->cap = cap;
	}
	memcpy(o->p + o->n, p, n);
	o->n += n;
}

static void put_u32(struct gguf_builder *b, struct buf *o, uint32_t v) { put(b, o, &v, 4); }
static void put_u64(struct gguf_builder *b, struct buf *o, uint64_t v) { put(b, o, &v, 8); }

static void put_str(struct gguf_builder *b, struct buf *o, const char *s, size_t len)
{
	put_u64(b, o, len);
	put(b, o, s, len);
}

static void key(struct gguf_builder *b, const char *k, enum gguf_vtype t)
{
	if (b->str_left)
		bfail(b, -EINVAL, "key '%s' started before the string array before it was complete", k);
	put_str(b, &b->kv, k, strlen(k));
	put_u32(b, &b->kv, t);
	b->n_kv++;
}

int gguf_builder_new(struct gguf_builder **out, const char *path)
{
	*out = calloc(1, sizeof(**out));
	if (!*out || !((*out)->path = strdup(path))) {
		free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

void gguf_builder_free(struct gguf_builder *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n_owned; i++)
		free(b->owned[i]);
	if (b->on_close)
		b->on_close(b->on_close_arg);
	for (int i = 0; i < b->n_sources; i++)
		free(b->sources[i]);
	free(b->owned);
	free(b->sources);
	free(b->tens);
	free(b->kv.p);
	free(b->ti.p);
	free(b->path);
	free(b);
}

int gguf_builder_add_source(struct gguf_builder *b, const char *path)
{
	char **s = realloc(b->sources, sizeof(*s) * (size_t)(b->n_sources + 1));
	if (!s) {
		bfail(b, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	b->sources = s;
	if (!(s[b->n_sources] = strdup(path))) {
		bfail(b, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	return b->n_sources++;
}

void gguf_builder_set_str(struct gguf_builder *b, const char *k, const char *s, size_t len)
{
	key(b, k, GGUF_VT_STRING);
	put_str(b, &b->kv, s, len);
}

void gguf_builder_set_u32(struct gguf_builder *b, const char *k, uint32_t v)
{
	key(b, k, GGUF_VT_U32);
	put_u32(b, &b->kv, v);
}

void gguf_builder_set_i32(struct gguf_builder *b, const char *k, int32_t v)
{
	key(b, k, GGUF_VT_I32);
	put(b, &b->kv, &v, 4);
}

void gguf_builder_set_f32(struct gguf_builder *b, const char *k, float v)
{
	key(b, k, GGUF_VT_F32);
	put(b, &b->kv, &v, 4);
}

void gguf_builder_set_bool(struct gguf_builder *b, const char *k, bool v)
{
	uint8_t u = v;
	key(b, k, GGUF_VT_BOOL);
	put(b, &b->kv, &u, 1);
}

void gguf_builder_set_arr(struct gguf_builder *b, const char *k, enum gguf_vtype elem,
			  const void *data, uint64_t n)
{
	size_t es = gguf_vtype_size(elem);
	if (!es) {
		bfail(b, -EINVAL, "key '%s': array element type %s is not fixed-size", k,
		      gguf_vtype_name(elem));
		return;
	}
	key(b, k, GGUF_VT_ARRAY);
	put_u32(b, &b->kv, elem);
	put_u64(b, &b->kv, n);
	put(b, &b->kv, data, (size_t)n * es);
}

void gguf_builder_begin_str_arr(struct gguf_builder *b, const char *k, uint64_t n)
{
	key(b, k, GGUF_VT_ARRAY);
	put_u32(b, &b->kv, GGUF_VT_STRING);
	put_u64(b, &b->kv, n);
	b->str_left = n;
}

void gguf_builder_push_str(struct gguf_builder *b, const char *s, size_t len)
{
	if (!b->str_left) {
		bfail(b, -EINVAL, "more strings pushed than the array declared");
		return;
	}
	b->str_left--;
	put_str(b, &b->kv, s, len);
}

void gguf_builder_add_tensor(struct gguf_builder *b, const char *name, uint32_t type,
			     uint32_t n_dims, const uint64_t ne[], const void *data, int source,
			     uint64_t file_offset)
{
	if (b->rc)
		return;
	if (source < -1 || source >= b->n_sources || !data) {
		bfail(b, -EINVAL, "tensor '%s': no data or unknown source %d", name, source);
		return;
	}
	if (b->n_tensors == b->tens_cap) {
		size_t cap = b->tens_cap ? b->tens_cap * 2 : 256;
		struct btensor *t = realloc(b->tens, cap * sizeof(*t));
		if (!t) {
			bfail(b, -ENOMEM, "out of memory");
			return;
		}
		b->tens = t;
		b->tens_cap = cap;
	}
	b->tens[b->n_tensors++] = (struct btensor){ data, source, file_offset };
	put_str(b, &b->ti, name, strlen(name));
	put_u32(b, &b->ti, n_dims);
	uint64_t n = 1;
	for (uint32_t d = 0; d < n_dims && d < GGUF_MAX_DIMS; d++) {
		put_u64(b, &b->ti, ne[d]);
		n *= ne[d] ? ne[d] : 1;
	}
	put_u32(b, &b->ti, type);
	/* A plausible, aligned, non-overlapping virtual offset: gguf.c checks
	 * its alignment; the size only needs to be roughly right. */
	put_u64(b, &b->ti, b->data_off);
	b->data_off += (n * 4 + 31) & ~(uint64_t)31;
}

void *gguf_builder_alloc(struct gguf_builder *b, size_t n)
{
	if (b->rc)
		return NULL;
	if (b->n_owned == b->owned_cap) {
		size_t cap = b->owned_cap ? b->owned_cap * 2 : 64;
		void **o = realloc(b->owned, cap * sizeof(*o));
		if (!o) {
			bfail(b, -ENOMEM, "out of memory");
			return NULL;
		}
		b->owned = o;
		b->owned_cap = cap;
	}
	void *p = NULL;
	if (posix_memalign(&p, BUILD_ALIGN, n ? n : 1)) {
		bfail(b, -ENOMEM, "out of memory for %zu bytes of converted weights", n);
		return NULL;
	}
	b->owned[b->n_owned++] = p;
	return p;
}

void gguf_builder_on_close(struct gguf_builder *b, void (*fn)(void *), void *arg)
{
	b->on_close = fn;
	b->on_close_arg = arg;
}

int gguf_builder_finish(struct gguf_builder *b, struct gguf **out, struct smk_err *err)
{
	*out = NULL;
	struct buf img = { 0 };
	if (b->str_left)
		bfail(b, -EINVAL, "a string array is %llu strings short",
		      (unsigned long long)b->str_left);
	put_u32(b, &img, 0x46554747u); /* "GGUF" */
	put_u32(b, &img, 3);
	put_u64(b, &img, b->n_tensors);
	put_u64(b, &img, b->n_kv);
	if (b->kv.n)
		put(b, &img, b->kv.p, b->kv.n);
	if (b->ti.n)
		put(b, &img, b->ti.p, b->ti.n);
	if (b->rc) {
		int rc = smk_fail(err, b->rc, "%s: building the model description: %s", b->path, b->msg);
		free(img.p);
		gguf_builder_free(b);
		return rc;
	}
	struct gguf *g = calloc(1, sizeof(*g));
	if (!g) {
		int rc = smk_fail(err, -ENOMEM, "%s: out of memory", b->path);
		free(img.p);
		gguf_builder_free(b);
		return rc;
	}
	g->path = b->path;
	b->path = NULL;
	g->base = img.p;
	g->size = img.n;
	g->image_owned = true;
	/* Hand the sources and buffers over before parsing, so that one
	 * gguf_close() frees everything on either outcome. */
	g->sources = b->sources;
	g->n_sources = b->n_sources;
	g->owned = b->owned;
	g->n_owned = b->n_owned;
	b->sources = NULL;
	b->n_sources = 0;
	b->owned = NULL;
	b->n_owned = 0;
	g->on_close = b->on_close;
	g->on_close_arg = b->on_close_arg;
	b->on_close = NULL;
	int rc = gguf_parse(g, true, err);
	if (!rc) {
		for (uint64_t i = 0; i < g->n_tensors; i++) {
			g->tensors[i].data = b->tens[i].data;
			g->tensors[i].source = b->tens[i].source;
			g->tensors[i].file_offset = b->tens[i].file_offset;
		}
	}
	gguf_builder_free(b);
	if (rc) {
		gguf_close(g);
		return rc;
	}
	*out = g;
	return 0;
}
