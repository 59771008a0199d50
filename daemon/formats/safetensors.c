/* safetensors.c - read-only safetensors reader over mmap.
 *
 * The file is mapped once (PROT_READ, MAP_PRIVATE) and the fd closed; the
 * header is checked for length, first byte and UTF-8 here, then parsed by
 * jansson (JSON_REJECT_DUPLICATES), walked once to validate and copy what
 * callers keep, and freed.  What is kept:
 *   - one string block: tensor names and __metadata__ keys and values,
 *     NUL-terminated (sized exactly in a first pass over the JSON object);
 *   - the tensor table, sorted by data offset, and an open-addressing index
 *     of names for st_find() (util/hashtab.h).
 * Format facts and the list of checks are in safetensors.h.
 */
#include "formats/safetensors.h"

#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unicode/unicode.h"
#include "formats/json_err.h"
#include "util/ckmath.h"
#include "util/hashtab.h"
#include "util/mapfile.h"
#include "util/text.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c hands out little-endian tensor data in place; big-endian hosts are not supported"
#endif

#define ST_LEN_BYTES 8u              /* the u64 header length */
#define ST_META_KEY "__metadata__"

struct st_file {
	char *path;
	const uint8_t *base;
	uint64_t size;
	uint64_t data_off;          /* ST_LEN_BYTES + header length */
	uint64_t n_tensors;
	struct st_tensor *tensors;  /* sorted by (offset, end, name) */
	struct smk_hindex index;    /* name -> tensors[] entry */
	uint64_t n_meta;
	const char **meta;          /* 2 * n_meta: key, value, key, value... */
	char *strings;              /* names, metadata keys and values */
};

/* ------------------------------------------------------------------------ */
/* Dtypes                                                                   */

static const struct {
	const char *name;
	uint8_t size;
} dtypes[ST_DTYPE_COUNT] = {
	[ST_F64] = { "F64", 8 },   [ST_F32] = { "F32", 4 },
	[ST_F16] = { "F16", 2 },   [ST_BF16] = { "BF16", 2 },
	[ST_I64] = { "I64", 8 },   [ST_I32] = { "I32", 4 },
	[ST_I16] = { "I16", 2 },   [ST_I8] = { "I8", 1 },
	[ST_U64] = { "U64", 8 },   [ST_U32] = { "U32", 4 },
	[ST_U16] = { "U16", 2 },   [ST_U8] = { "U8", 1 },
	[ST_BOOL] = { "BOOL", 1 }, [ST_F8_E4M3] = { "F8_E4M3", 1 },
	[ST_F8_E5M2] = { "F8_E5M2", 1 },
};

/* Types the upstream crate knows that smoke does not read: named in the
 * message so that "unsupported" is not mistaken for "corrupt". */
static const char *const upstream_only[] = {
	"F4", "F6_E2M3", "F6_E3M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64",
};

const char *st_dtype_name(enum st_dtype t)
{
	return (unsigned)t < ST_DTYPE_COUNT ? dtypes[t].name : "unknown";
}

size_t st_dtype_size(enum st_dtype t)
{
	return (unsigned)t < ST_DTYPE_COUNT ? dtypes[t].size : 0;
}

int st_dtype_parse(const char *s, enum st_dtype *out)
{
	for (int t = 0; s && t < ST_DTYPE_COUNT; t++)
		if (!strcmp(s, dtypes[t].name)) {
			*out = (enum st_dtype)t;
			return 0;
		}
	return -EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static inline uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* st_find()'s key is a name; entries are f->tensors[]. */
struct name_key {
	const struct st_file *f;
	const char *name;
};

static bool name_eq(const void *key, int32_t e)
{
	const struct name_key *k = key;
	return !strcmp(k->f->tensors[e].name, k->name);
}

static const char *json_kind(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number with a fraction or exponent";
	case JSON_TRUE: case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

struct parser {
	struct st_file *f;
	struct smk_err *err;
	char where[160];   /* "tensor 'x'", "header", ... */
};

/* Fail with "<path>: <where>: <reason>". */
__attribute__((format(printf, 3, 4)))
static int pfail(struct parser *p, int code, const char *fmt, ...)
{
	char reason[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return smk_fail(p->err, code, "%s: %s: %s", p->f->path, p->where, reason);
}

static void where_tensor(struct parser *p, const char *name)
{
	char pn[112];
	snprintf(p->where, sizeof(p->where), "tensor '%s'",
		 smk_printable(pn, sizeof(pn), name, strlen(name)));
}

/* ------------------------------------------------------------------------ */
/* Header bytes                                                             */

/* The u64 length, its bounds, the first byte and UTF-8: everything that can
 * be said before JSON parsing, with messages sharper than the parser's. */
static int check_header_bytes(struct parser *p, uint64_t *hlen)
{
	struct st_file *f = p->f;
	snprintf(p->where, sizeof(p->where), "header length");
	if (f->size < ST_LEN_BYTES)
		return pfail(p, -EINVAL, "the file is %" PRIu64 " bytes, too short for the"
			     " 8-byte header length that starts a safetensors file", f->size);
	uint64_t n = rd64(f->base);
	if (n == 0)
		return pfail(p, -EINVAL, "is 0 (the header must hold at least \"{}\")");
	/* The bound first, so that an absurd value says so rather than "past
	 * end"; it also keeps the addition below from overflowing. */
	if (n > ST_MAX_HEADER)
		return pfail(p, -EINVAL, "%" PRIu64 " exceeds the limit of %u bytes", n,
			     ST_MAX_HEADER);
	if (n > f->size - ST_LEN_BYTES)
		return pfail(p, -EINVAL, "%" PRIu64 " runs past end of file (the header would"
			     " end at byte %" PRIu64 ", the file is %" PRIu64 " bytes)",
			     n, n + ST_LEN_BYTES, f->size);
	*hlen = n;

	const uint8_t *h = f->base + ST_LEN_BYTES;
	snprintf(p->where, sizeof(p->where), "header");
	if (h[0] != '{')
		return pfail(p, -EINVAL, "does not begin with '{' (first byte is %#04x): the"
			     " header must be a JSON object", h[0]);
	for (uint64_t i = 0; i < n;) {
		if (h[i] < 0x80) {
			i++;
			continue;
		}
		size_t len = 0;
		if (unicode_utf8_check(h + i, (size_t)(n - i), &len) != UNICODE_UTF8_OK)
			return pfail(p, -EINVAL, "not valid UTF-8 at header byte %" PRIu64
				     " (file offset %" PRIu64 ", byte %#04x)", i,
				     i + ST_LEN_BYTES, h[i]);
		i += len;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* JSON walk                                                                */

/* A non-negative JSON integer (jansson's are int64_t, so <= INT64_MAX). */
static int get_uint(struct parser *p, json_t *j, const char *what, uint64_t *out)
{
	if (!json_is_integer(j))
		return pfail(p, -EINVAL, "%s is %s, not a non-negative integer", what,
			     json_kind(j));
	json_int_t v = json_integer_value(j);
	if (v < 0)
		return pfail(p, -EINVAL, "%s is %" JSON_INTEGER_FORMAT ", negative", what, v);
	*out = (uint64_t)v;
	return 0;
}

static int parse_dtype(struct parser *p, json_t *j, enum st_dtype *out)
{
	if (!json_is_string(j))
		return pfail(p, -EINVAL, "dtype is %s, not a string", json_kind(j));
	const char *s = json_string_value(j);
	if (!st_dtype_parse(s, out))
		return 0;
	char ps[64];
	for (size_t i = 0; i < sizeof(upstream_only) / sizeof(upstream_only[0]); i++)
		if (!strcmp(s, upstream_only[i]))
			return pfail(p, -EINVAL, "dtype '%s' is a safetensors type that smoke"
				     " does not support", s);
	return pfail(p, -EINVAL, "unknown dtype '%s'",
		     smk_printable(ps, sizeof(ps), s, strlen(s)));
}

static int parse_shape(struct parser *p, json_t *j, struct st_tensor *t)
{
	if (!json_is_array(j))
		return pfail(p, -EINVAL, "shape is %s, not an array", json_kind(j));
	size_t n = json_array_size(j);
	if (n > ST_MAX_DIMS)
		return pfail(p, -EINVAL, "shape has %zu dimensions (smoke reads at most %d)",
			     n, ST_MAX_DIMS);
	t->n_dims = (int)n;
	t->n_elems = 1;
	for (size_t d = 0; d < ST_MAX_DIMS; d++) {
		t->shape[d] = 1;
		if (d >= n)
			continue;
		char what[32];
		snprintf(what, sizeof(what), "shape[%zu]", d);
		int rc = get_uint(p, json_array_get(j, d), what, &t->shape[d]);
		if (rc)
			return rc;
		if (ck_mul(t->n_elems, t->shape[d], &t->n_elems))
			return pfail(p, -EINVAL, "element count overflows 64 bits at shape[%zu]"
				     " = %" PRIu64, d, t->shape[d]);
	}
	if (ck_mul(t->n_elems, dtypes[t->dtype].size, &t->nbytes))
		return pfail(p, -EINVAL, "byte size overflows 64 bits (%" PRIu64
			     " elements of %s)", t->n_elems, dtypes[t->dtype].name);
	return 0;
}

/* data_offsets -> t->file_offset (relative to the data section for now);
 * t->nbytes already holds what the shape and dtype need. */
static int parse_offsets(struct parser *p, json_t *j, struct st_tensor *t, uint64_t data_size)
{
	if (!json_is_array(j))
		return pfail(p, -EINVAL, "data_offsets is %s, not an array of two integers"
			     " [begin, end]", json_kind(j));
	if (json_array_size(j) != 2)
		return pfail(p, -EINVAL, "data_offsets holds %zu values, not two [begin, end]",
			     json_array_size(j));
	uint64_t b, e;
	int rc = get_uint(p, json_array_get(j, 0), "data_offsets[0] (begin)", &b);
	if (!rc)
		rc = get_uint(p, json_array_get(j, 1), "data_offsets[1] (end)", &e);
	if (rc)
		return rc;
	if (b > e)
		return pfail(p, -EINVAL, "data_offsets begin %" PRIu64 " is after end %" PRIu64,
			     b, e);
	if (e > data_size)
		return pfail(p, -EINVAL, "data_offsets end %" PRIu64 " is beyond the data"
			     " section (%" PRIu64 " bytes)", e, data_size);
	if (e - b != t->nbytes)
		return pfail(p, -EINVAL, "data_offsets [%" PRIu64 ", %" PRIu64 ") hold %"
			     PRIu64 " bytes but %" PRIu64 " elements of %s need %" PRIu64,
			     b, e, e - b, t->n_elems, dtypes[t->dtype].name, t->nbytes);
	t->file_offset = b;
	return 0;
}

static int parse_tensor(struct parser *p, const char *name, json_t *entry,
			struct st_tensor *t, uint64_t data_size)
{
	where_tensor(p, name);
	if (!json_is_object(entry))
		return pfail(p, -EINVAL, "entry is %s, not an object with dtype, shape and"
			     " data_offsets", json_kind(entry));
	const char *k;
	json_t *v;
	json_object_foreach(entry, k, v) {
		char pk[64];
		if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets"))
			return pfail(p, -EINVAL, "unknown field '%s' (an entry has only dtype,"
				     " shape and data_offsets)",
				     smk_printable(pk, sizeof(pk), k, strlen(k)));
	}
	static const char *const fields[] = { "dtype", "shape", "data_offsets" };
	for (int i = 0; i < 3; i++)
		if (!json_object_get(entry, fields[i]))
			return pfail(p, -EINVAL, "missing field '%s'", fields[i]);
	int rc = parse_dtype(p, json_object_get(entry, "dtype"), &t->dtype);
	if (!rc)
		rc = parse_shape(p, json_object_get(entry, "shape"), t);
	if (!rc)
		rc = parse_offsets(p, json_object_get(entry, "data_offsets"), t, data_size);
	return rc;
}

/* __metadata__: string to string.  Adds the bytes its copies need. */
static int check_metadata(struct parser *p, json_t *m, uint64_t *n, size_t *bytes)
{
	snprintf(p->where, sizeof(p->where), "header field '" ST_META_KEY "'");
	if (!json_is_object(m))
		return pfail(p, -EINVAL, "is %s, not an object of strings", json_kind(m));
	const char *k;
	json_t *v;
	json_object_foreach(m, k, v) {
		char pk[96];
		if (!json_is_string(v))
			return pfail(p, -EINVAL, "value of key '%s' is %s, not a string",
				     smk_printable(pk, sizeof(pk), k, strlen(k)), json_kind(v));
		*bytes += strlen(k) + 1 + json_string_length(v) + 1;
		(*n)++;
	}
	return 0;
}

static char *copy_str(char **cur, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = memcpy(*cur, s, n);
	*cur += n;
	return d;
}

static int cmp_tensors(const void *a, const void *b)
{
	const struct st_tensor *x = a, *y = b;
	if (x->file_offset != y->file_offset)
		return x->file_offset < y->file_offset ? -1 : 1;
	if (x->nbytes != y->nbytes)
		return x->nbytes < y->nbytes ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* After sorting, the tensors must tile [0, data_size): each begins where the
 * previous one ended and the last ends at data_size.  A hole would be bytes
 * that no tensor accounts for (a place to hide a second file format). */
static int check_tiling(struct parser *p, uint64_t data_size)
{
	const struct st_file *f = p->f;
	uint64_t pos = 0;
	for (uint64_t i = 0; i < f->n_tensors; i++) {
		const struct st_tensor *t = &f->tensors[i], *prev = i ? t - 1 : NULL;
		uint64_t b = t->file_offset, e = b + t->nbytes;
		char pn[112];
		where_tensor(p, t->name);
		if (b > pos && prev)
			return pfail(p, -EINVAL, "data_offsets [%" PRIu64 ", %" PRIu64 ") leave a"
				     " hole: bytes [%" PRIu64 ", %" PRIu64 ") after tensor '%s'"
				     " belong to no tensor", b, e, pos, b,
				     smk_printable(pn, sizeof(pn), prev->name, strlen(prev->name)));
		if (b > pos)
			return pfail(p, -EINVAL, "data_offsets [%" PRIu64 ", %" PRIu64 ") leave a"
				     " hole: bytes [0, %" PRIu64 ") at the start of the data"
				     " section belong to no tensor", b, e, b);
		if (b < pos)
			return pfail(p, -EINVAL, "data_offsets [%" PRIu64 ", %" PRIu64 ") overlap"
				     " tensor '%s' at [%" PRIu64 ", %" PRIu64 ")", b, e,
				     smk_printable(pn, sizeof(pn), prev->name, strlen(prev->name)),
				     prev->file_offset, prev->file_offset + prev->nbytes);
		pos = e;
	}
	snprintf(p->where, sizeof(p->where), "data section");
	if (pos != data_size)
		return pfail(p, -EINVAL, "bytes [%" PRIu64 ", %" PRIu64 ") at its end belong to"
			     " no tensor", pos, data_size);
	return 0;
}

static int build_index(struct parser *p)
{
	struct st_file *f = p->f;
	int rc = smk_hindex_init(&f->index, f->n_tensors);
	if (rc == -E2BIG)
		return smk_fail(p->err, -EINVAL, "%s: %" PRIu64 " tensors (at most %u)", f->path,
				f->n_tensors, SMK_HINDEX_MAX);
	if (rc)
		return smk_fail(p->err, rc, "%s: out of memory", f->path);
	for (uint64_t i = 0; i < f->n_tensors; i++) {
		struct name_key k = { f, f->tensors[i].name };
		/* jansson already refused duplicate keys; kept as a guard
		 * because st_find() would silently hide the second one. */
		if (smk_hindex_put(&f->index, smk_fnv1a64_str(k.name), name_eq, &k,
				   (int32_t)i) != (int32_t)i) {
			where_tensor(p, k.name);
			return pfail(p, -EINVAL, "duplicate tensor name");
		}
	}
	return 0;
}

static int parse_json(struct parser *p, uint64_t hlen)
{
	struct st_file *f = p->f;
	json_error_t je;
	bool nomem;
	json_t *root = json_loadb_checked((const char *)f->base + ST_LEN_BYTES, (size_t)hlen,
					  JSON_REJECT_DUPLICATES, &je, &nomem);
	snprintf(p->where, sizeof(p->where), "header");
	if (nomem)
		return pfail(p, -ENOMEM, "out of memory reading it");
	if (!root)
		return pfail(p, -EINVAL, "not valid JSON: %s (header byte %d, line %d,"
			     " column %d)", je.text, je.position, je.line, je.column);
	int rc = 0;
	if (!json_is_object(root)) {   /* unreachable after the '{' check */
		rc = pfail(p, -EINVAL, "is %s, not a JSON object", json_kind(root));
		goto out;
	}

	/* Pass 1: validate __metadata__, count, size the string block. */
	uint64_t data_size = f->size - f->data_off;
	size_t bytes = 0;
	const char *k;
	json_t *v;
	json_object_foreach(root, k, v) {
		if (!strcmp(k, ST_META_KEY)) {
			if ((rc = check_metadata(p, v, &f->n_meta, &bytes)))
				goto out;
			continue;
		}
		if (!*k) {
			snprintf(p->where, sizeof(p->where), "tensor ''");
			rc = pfail(p, -EINVAL, "empty tensor name");
			goto out;
		}
		f->n_tensors++;
		bytes += strlen(k) + 1;
	}
	f->strings = malloc(bytes ? bytes : 1);
	f->tensors = calloc((size_t)f->n_tensors + 1, sizeof(*f->tensors));
	f->meta = calloc((size_t)f->n_meta * 2 + 1, sizeof(*f->meta));
	if (!f->strings || !f->tensors || !f->meta) {
		rc = smk_fail(p->err, -ENOMEM, "%s: out of memory for %" PRIu64 " tensors",
			      f->path, f->n_tensors);
		goto out;
	}

	/* Pass 2: tensors and metadata copies. */
	char *cur = f->strings;
	uint64_t ti = 0, mi = 0;
	json_object_foreach(root, k, v) {
		if (!strcmp(k, ST_META_KEY)) {
			const char *mk;
			json_t *mv;
			json_object_foreach(v, mk, mv) {
				f->meta[2 * mi] = copy_str(&cur, mk);
				f->meta[2 * mi + 1] = copy_str(&cur, json_string_value(mv));
				mi++;
			}
			continue;
		}
		struct st_tensor *t = &f->tensors[ti++];
		t->name = copy_str(&cur, k);
		if ((rc = parse_tensor(p, t->name, v, t, data_size)))
			goto out;
	}

	qsort(f->tensors, (size_t)f->n_tensors, sizeof(*f->tensors), cmp_tensors);
	if ((rc = check_tiling(p, data_size)) || (rc = build_index(p)))
		goto out;
	for (uint64_t i = 0; i < f->n_tensors; i++) {
		struct st_tensor *t = &f->tensors[i];
		t->file_offset += f->data_off;   /* <= size: checked above */
		t->data = f->base + t->file_offset;
	}
out:
	json_decref(root);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Open / close                                                             */

void st_close(struct st_file *f)
{
	if (!f)
		return;
	if (f->base)
		smk_unmap_file(f->base, f->size);
	free(f->tensors);
	smk_hindex_deinit(&f->index);
	free(f->meta);
	free(f->strings);
	free(f->path);
	free(f);
}

int st_open(struct st_file **out, const char *path, struct smk_err *err)
{
	*out = NULL;
	struct st_file *f = calloc(1, sizeof(*f));
	if (!f || !(f->path = strdup(path))) {
		free(f);
		return smk_fail(err, -ENOMEM, "%s: out of memory", path);
	}
	int rc = smk_map_file(path, "header length: the file is empty (0 bytes; a safetensors file"
			      " starts with an 8-byte header length)", &f->base, &f->size, err);

	struct parser p = { .f = f, .err = err };
	uint64_t hlen = 0;
	if (!rc)
		rc = check_header_bytes(&p, &hlen);
	if (!rc) {
		f->data_off = ST_LEN_BYTES + hlen;
		rc = parse_json(&p, hlen);
	}
	if (rc) {
		st_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Accessors                                                                */

const char *st_path(const struct st_file *f) { return f->path; }
uint64_t st_file_size(const struct st_file *f) { return f->size; }
uint64_t st_data_offset(const struct st_file *f) { return f->data_off; }
uint64_t st_n_tensors(const struct st_file *f) { return f->n_tensors; }
uint64_t st_n_metadata(const struct st_file *f) { return f->n_meta; }

const struct st_tensor *st_tensor_at(const struct st_file *f, uint64_t i)
{
	return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const struct st_tensor *st_find(const struct st_file *f, const char *name)
{
	if (!name)
		return NULL;
	struct name_key k = { f, name };
	int32_t e = smk_hindex_find(&f->index, smk_fnv1a64_str(name), name_eq, &k);
	return e < 0 ? NULL : &f->tensors[e];
}

const char *st_metadata(const struct st_file *f, const char *key)
{
	for (uint64_t i = 0; key && i < f->n_meta; i++)
		if (!strcmp(f->meta[2 * i], key))
			return f->meta[2 * i + 1];
	return NULL;
}

int st_metadata_at(const struct st_file *f, uint64_t i, const char **key, const char **value)
{
	if (i >= f->n_meta)
		return -EINVAL;
	*key = f->meta[2 * i];
	*value = f->meta[2 * i + 1];
	return 0;
}
