/* gguf.c - read-only GGUF (v2, v3) reader over mmap.
 *
 * The file is mapped once (PROT_READ, MAP_PRIVATE) and parsed in one pass by
 * a cursor that checks every length against the bytes left before reading.
 * What is copied at open is only what an index needs:
 *   - keys and tensor names, NUL-terminated, in one pool (they are not
 *     NUL-terminated in the file, and callers want C strings);
 *   - one entry per key: type and a pointer to the value in the mapping;
 *   - one node per array: element type, count, first element.  String
 *     arrays also get a sparse offset table (every GGUF_STR_STRIDE-th
 *     element), so element i is found by skipping at most STRIDE-1 length
 *     prefixes: O(1) access for 1/STRIDE of the memory of a full table (the
 *     default model's 262144 tokens cost 128 KiB instead of 2 MiB).  Arrays
 *     of arrays get one node per element;
 *   - open-addressing hash tables for keys and tensor names.
 * Everything is built at open, so accessors are const and thread-safe.
 *
 * Layout (little-endian; the format facts are in gguf.h):
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x      { str key | u32 vtype | value }
 *   n_tensors x { str name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 off }
 *   zero padding to the alignment | data (tensor i at data_offset + off_i)
 * In v1 the counts and string lengths were u32, so a v1 file cannot be read
 * with this layout; v1 predates every model in circulation and is refused.
 */
#include "formats/gguf.h"

#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/gguf_priv.h"
#include "objstore/osrc.h"
#include "quant/qtype.h"
#include "util/ckmath.h"
#include "util/hashtab.h"
#include "util/mapfile.h"
#include "util/text.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads little-endian values in place; port the rd* helpers"
#endif

#define GGUF_MAGIC 0x46554747u      /* "GGUF" read as a LE u32 */
#define GGUF_HEADER_BYTES 24u
#define GGUF_STR_STRIDE 16u         /* string arrays: one offset per 16 */
/* Smallest encodings, used to bound counts by the bytes that remain. */
#define GGUF_MIN_KV_BYTES 14u       /* u64 len + 1-byte key + u32 type + u8 */
#define GGUF_MIN_TINFO_BYTES 25u    /* u64 len + 1 + u32 n_dims + u32 + u64 */
#define GGUF_MIN_ARR_BYTES 12u      /* u32 elem type + u64 count */
#define GGUF_STR_PREFIX 8u

/* ------------------------------------------------------------------------ */
/* Data structures                                                          */

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static const struct {
	const char *name;
	uint8_t size;
	bool is_int, is_signed;
} vtypes[GGUF_VT_COUNT] = {
	[GGUF_VT_U8] = { "u8", 1, true, false },
	[GGUF_VT_I8] = { "i8", 1, true, true },
	[GGUF_VT_U16] = { "u16", 2, true, false },
	[GGUF_VT_I16] = { "i16", 2, true, true },
	[GGUF_VT_U32] = { "u32", 4, true, false },
	[GGUF_VT_I32] = { "i32", 4, true, true },
	[GGUF_VT_F32] = { "f32", 4, false, false },
	[GGUF_VT_BOOL] = { "bool", 1, false, false },
	[GGUF_VT_STRING] = { "string", 0, false, false },
	[GGUF_VT_ARRAY] = { "array", 0, false, false },
	[GGUF_VT_U64] = { "u64", 8, true, false },
	[GGUF_VT_I64] = { "i64", 8, true, true },
	[GGUF_VT_F64] = { "f64", 8, false, false },
};

size_t gguf_vtype_size(enum gguf_vtype t)
{
	return (unsigned)t < GGUF_VT_COUNT ? vtypes[t].size : 0;
}

const char *gguf_vtype_name(enum gguf_vtype t)
{
	return (unsigned)t < GGUF_VT_COUNT ? vtypes[t].name : "unknown";
}

/* Bytes the smallest element of type t occupies (for count bounds). */
static uint64_t vtype_min_bytes(uint32_t t)
{
	if (t == GGUF_VT_STRING)
		return GGUF_STR_PREFIX;
	if (t == GGUF_VT_ARRAY)
		return GGUF_MIN_ARR_BYTES;
	return vtypes[t].size;
}

static void *pool_alloc(struct gguf *g, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	struct pool_blk *b = g->pool;
	if (!b || b->cap - b->used < n) {
		size_t cap = n > (64u << 10) ? n : (64u << 10);
		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->cap = cap;
		b->used = 0;
		b->next = g->pool;
		g->pool = b;
	}
	void *p = (char *)b->mem + b->used;
	b->used += n;
	return p;
}

static char *pool_strdup(struct gguf *g, const uint8_t *s, uint64_t len)
{
	char *p = pool_alloc(g, (size_t)len + 1);
	if (p) {
		memcpy(p, s, (size_t)len);
		p[len] = '\0';
	}
	return p;
}

/* ------------------------------------------------------------------------ */
/* Parser                                                                   */

struct parser {
	struct gguf *g;
	uint64_t pos;
	bool external;     /* image from gguf_build.c: tensor data lives elsewhere */
	struct smk_err *err;
	char field[160];   /* what is being read, for messages: "key 'x'" */
};

static uint64_t left(const struct parser *p)
{
	return p->g->size - p->pos;
}

/* Fail with "path: <field>: <reason>". */
__attribute__((format(printf, 3, 4)))
static int pfail(struct parser *p, int code, const char *fmt, ...)
{
	char reason[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return smk_fail(p->err, code, "%s: %s: %s", p->g->path, p->field, reason);
}

static int need(struct parser *p, uint64_t n, const char *what)
{
	if (n <= left(p))
		return 0;
	return pfail(p, -EINVAL, "%s at offset %" PRIu64 " needs %" PRIu64
		     " bytes but the file ends after %" PRIu64 " (file is %" PRIu64 " bytes)",
		     what, p->pos, n, left(p), p->g->size);
}

static int get_u32(struct parser *p, uint32_t *v, const char *what)
{
	int rc = need(p, 4, what);
	if (rc)
		return rc;
	*v = rd32(p->g->base + p->pos);
	p->pos += 4;
	return 0;
}

static int get_u64(struct parser *p, uint64_t *v, const char *what)
{
	int rc = need(p, 8, what);
	if (rc)
		return rc;
	*v = rd64(p->g->base + p->pos);
	p->pos += 8;
	return 0;
}

/* A gguf string: u64 length + bytes, at most max bytes.  *s points into the
 * mapping.  The limit is checked first so that the message for an absurd
 * length says so rather than "past end". */
static int get_str(struct parser *p, const uint8_t **s, uint64_t *len, uint64_t max,
		   const char *what)
{
	int rc = get_u64(p, len, what);
	if (rc)
		return rc;
	if (*len > max)
		return pfail(p, -EINVAL, "%s length %" PRIu64 " at offset %" PRIu64
			     " exceeds the limit of %" PRIu64 " bytes", what, *len,
			     p->pos - 8, max);
	if (*len > left(p))
		return pfail(p, -EINVAL, "%s length %" PRIu64 " at offset %" PRIu64
			     " runs past end of file (%" PRIu64 " bytes)",
			     what, *len, p->pos - 8, p->g->size);
	*s = p->g->base + p->pos;
	p->pos += *len;
	return 0;
}

static int walk_array(struct parser *p, struct gguf_anode *node, unsigned depth);
static void int_read(uint32_t t, const uint8_t *p, bool *neg, uint64_t *u, int64_t *s);

/* Validate a string array's elements and build its sparse offset table. */
static int walk_str_elems(struct parser *p, struct gguf_anode *node)
{
	uint64_t n_idx = node->n / GGUF_STR_STRIDE + 1;
	node->stride_off = pool_alloc(p->g, (size_t)n_idx * sizeof(uint64_t));
	if (!node->stride_off)
		return pfail(p, -ENOMEM, "out of memory indexing %" PRIu64 " strings", node->n);
	uint64_t start = p->pos;
	for (uint64_t i = 0; i < node->n; i++) {
		if (i % GGUF_STR_STRIDE == 0)
			node->stride_off[i / GGUF_STR_STRIDE] = p->pos - start;
		uint64_t len;
		if (left(p) < 8)
			return pfail(p, -EINVAL, "string element %" PRIu64 " of %" PRIu64
				     " at offset %" PRIu64 ": length runs past end of file (%"
				     PRIu64 " bytes)", i, node->n, p->pos, p->g->size);
		len = rd64(p->g->base + p->pos);
		p->pos += 8;
		if (len > left(p))
			return pfail(p, -EINVAL, "string element %" PRIu64 " of %" PRIu64
				     ": length %" PRIu64 " at offset %" PRIu64
				     " runs past end of file (%" PRIu64 " bytes)",
				     i, node->n, len, p->pos - 8, p->g->size);
		p->pos += len;
	}
	return 0;
}

/* Bool bytes other than 0/1 are invalid per the spec; C code reading them as
 * bool would otherwise see values that are neither true nor false. */
static int check_bools(struct parser *p, const uint8_t *b, uint64_t n, bool scalar)
{
	for (uint64_t i = 0; i < n; i++) {
		if (b[i] <= 1)
			continue;
		if (scalar)
			return pfail(p, -EINVAL, "bool value has byte value %u (must be 0 or 1)",
				     b[i]);
		return pfail(p, -EINVAL, "bool element %" PRIu64 " has byte value %u"
			     " (must be 0 or 1)", i, b[i]);
	}
	return 0;
}

/* Array body after the u32 "array" type tag: u32 elem type, u64 count,
 * elements.  depth is the nesting level of this array (top level = 1). */
static int walk_array(struct parser *p, struct gguf_anode *node, unsigned depth)
{
	uint32_t elem;
	uint64_t n, bytes;
	int rc = get_u32(p, &elem, "array element type");
	if (!rc)
		rc = get_u64(p, &n, "array element count");
	if (rc)
		return rc;
	if (elem >= GGUF_VT_COUNT)
		return pfail(p, -EINVAL, "array element type %" PRIu32 " at offset %" PRIu64
			     " is not a GGUF value type (0..%d)", elem, p->pos - 12,
			     GGUF_VT_COUNT - 1);
	/* Every element takes at least min_bytes, so a count the rest of the
	 * file cannot hold is rejected before walking or allocating anything. */
	if (ck_mul(n, vtype_min_bytes(elem), &bytes) || bytes > left(p))
		return pfail(p, -EINVAL, "array of %" PRIu64 " %s elements at offset %" PRIu64
			     " cannot fit in the %" PRIu64 " bytes left in the file",
			     n, vtypes[elem].name, p->pos - 12, left(p));
	node->elem = elem;
	node->n = n;
	node->data = p->g->base + p->pos;
	node->stride_off = NULL;
	node->kids = NULL;
	if (elem == GGUF_VT_STRING)
		return walk_str_elems(p, node);
	if (elem != GGUF_VT_ARRAY) {
		if (elem == GGUF_VT_BOOL && (rc = check_bools(p, node->data, n, false)))
			return rc;
		p->pos += bytes;
		return 0;
	}
	/* Arrays of arrays: recursion is bounded by depth, allocation by the
	 * whole-file subarray budget (each costs a node, 12 file bytes can ask
	 * for 40 bytes of memory). */
	if (depth >= GGUF_MAX_ARRAY_DEPTH)
		return pfail(p, -EINVAL, "arrays nested deeper than %u levels at offset %" PRIu64,
			     GGUF_MAX_ARRAY_DEPTH, p->pos - 12);
	if (n > GGUF_MAX_SUBARRAYS - p->g->n_subarrays)
		return pfail(p, -EINVAL, "more than %u arrays nested in arrays in the file",
			     GGUF_MAX_SUBARRAYS);
	p->g->n_subarrays += n;
	if (n) {
		node->kids = pool_alloc(p->g, (size_t)n * sizeof(*node->kids));
		if (!node->kids)
			return pfail(p, -ENOMEM, "out of memory for %" PRIu64 " nested arrays", n);
	}
	for (uint64_t i = 0; i < n; i++)
		if ((rc = walk_array(p, &node->kids[i], depth + 1)))
			return rc;
	return 0;
}

/* Name lookups: the key is a C string, the entries are g->kv[] (by key) or
 * g->tensors[] (by name); kv_index and t_index hold their numbers. */
struct name_key {
	const struct gguf *g;
	const char *name;
};

static bool kv_eq(const void *key, int32_t e)
{
	const struct name_key *k = key;
	return !strcmp(k->g->kv[e].key, k->name);
}

static bool tensor_eq(const void *key, int32_t e)
{
	const struct name_key *k = key;
	return !strcmp(k->g->tensors[e].name, k->name);
}

/* Entry i under its name; the entry that already has the name, else i. */
static int32_t kv_put(struct gguf *g, uint64_t i)
{
	struct name_key k = { g, g->kv[i].key };
	return smk_hindex_put(&g->kv_index, smk_fnv1a64_str(k.name), kv_eq, &k, (int32_t)i);
}

static int32_t tensor_put(struct gguf *g, uint64_t i)
{
	struct name_key k = { g, g->tensors[i].name };
	return smk_hindex_put(&g->t_index, smk_fnv1a64_str(k.name), tensor_eq, &k, (int32_t)i);
}

/* NULL if absent (or key is NULL). */
static const struct gguf_kv *kv_find(const struct gguf *g, const char *key)
{
	if (!key)
		return NULL;
	struct name_key k = { g, key };
	int32_t e = smk_hindex_find(&g->kv_index, smk_fnv1a64_str(key), kv_eq, &k);
	return e < 0 ? NULL : &g->kv[e];
}

/* A key or a tensor name: 1..max bytes, no NUL, copied to the pool as a C
 * string.  what: "key" or "name" (for messages); kind: what p->field calls
 * it once read ("key 'x'", "tensor 'x'"). */
static int read_name(struct parser *p, uint64_t max, const char *what, const char *kind,
		     const char **out)
{
	const uint8_t *s = NULL;
	uint64_t len = 0;
	char pr[96];
	int rc;
	if ((rc = get_str(p, &s, &len, max, what)))
		return rc;
	if (len == 0)
		return pfail(p, -EINVAL, "empty %s at offset %" PRIu64, what, p->pos - 8);
	snprintf(p->field, sizeof(p->field), "%s '%s'", kind,
		 smk_printable(pr, sizeof(pr), s, (size_t)len));
	if (memchr(s, 0, (size_t)len))
		return pfail(p, -EINVAL, "%s contains a NUL byte", what);
	if (!(*out = pool_strdup(p->g, s, len)))
		return pfail(p, -ENOMEM, "out of memory");
	return 0;
}

static int parse_header(struct parser *p)
{
	struct gguf *g = p->g;
	uint32_t magic;
	int rc;

	snprintf(p->field, sizeof(p->field), "header field 'magic'");
	if ((rc = get_u32(p, &magic, "magic")))
		return rc;
	if (magic != GGUF_MAGIC) {
		char m[16];
		return pfail(p, -EINVAL, "bytes '%s' are not \"GGUF\": not a GGUF file",
			     smk_printable(m, sizeof(m), g->base, 4));
	}
	snprintf(p->field, sizeof(p->field), "header field 'version'");
	if ((rc = get_u32(p, &g->version, "version")))
		return rc;
	if (g->version == 1)
		return pfail(p, -EINVAL, "GGUF v1 is not supported (only v2 and v3): "
			     "reconvert the model with a current llama.cpp");
	if (g->version && !(g->version & 0xffff))
		return pfail(p, -EINVAL, "version %#" PRIx32 " looks byte-swapped: big-endian "
			     "GGUF files are not supported", g->version);
	if (g->version != 2 && g->version != 3)
		return pfail(p, -EINVAL, "unsupported GGUF version %" PRIu32
			     " (only v2 and v3)", g->version);

	snprintf(p->field, sizeof(p->field), "header field 'n_tensors'");
	if ((rc = get_u64(p, &g->n_tensors, "n_tensors")))
		return rc;
	snprintf(p->field, sizeof(p->field), "header field 'n_kv'");
	if ((rc = get_u64(p, &g->n_kv, "n_kv")))
		return rc;
	/* Counts the rest of the file could not possibly hold are lies; refuse
	 * them before they size an allocation. */
	uint64_t room = left(p);
	if (g->n_kv > room / GGUF_MIN_KV_BYTES || g->n_kv > GGUF_MAX_KV)
		return pfail(p, -EINVAL, "%" PRIu64 " key-value pairs cannot fit in the %"
			     PRIu64 " bytes left in the file (limit %u)",
			     g->n_kv, room, GGUF_MAX_KV);
	snprintf(p->field, sizeof(p->field), "header field 'n_tensors'");
	if (g->n_tensors > room / GGUF_MIN_TINFO_BYTES || g->n_tensors > GGUF_MAX_TENSORS)
		return pfail(p, -EINVAL, "%" PRIu64 " tensor infos cannot fit in the %"
			     PRIu64 " bytes left in the file (limit %u)",
			     g->n_tensors, room, GGUF_MAX_TENSORS);
	return 0;
}

static int parse_kvs(struct parser *p)
{
	struct gguf *g = p->g;
	int rc;

	g->kv = calloc((size_t)g->n_kv + 1, sizeof(*g->kv));
	if (!g->kv || smk_hindex_init(&g->kv_index, g->n_kv))
		return smk_fail(p->err, -ENOMEM, "%s: out of memory for %" PRIu64 " keys",
				g->path, g->n_kv);
	for (uint64_t i = 0; i < g->n_kv; i++) {
		struct gguf_kv *kv = &g->kv[i];

		snprintf(p->field, sizeof(p->field), "kv %" PRIu64 " key", i);
		if ((rc = read_name(p, GGUF_MAX_KEY_LEN, "key", "key", &kv->key)))
			return rc;
		int32_t first = kv_put(g, i);
		if ((uint64_t)first != i)
			return pfail(p, -EINVAL, "duplicate key (entries %" PRId32 " and %" PRIu64 ")",
				     first, i);

		if ((rc = get_u32(p, &kv->type, "value type")))
			return rc;
		if (kv->type >= GGUF_VT_COUNT)
			return pfail(p, -EINVAL, "unknown value type %" PRIu32
				     " at offset %" PRIu64 " (GGUF has 0..%d)",
				     kv->type, p->pos - 4, GGUF_VT_COUNT - 1);
		kv->val = g->base + p->pos;
		if (kv->type == GGUF_VT_ARRAY) {
			rc = walk_array(p, &kv->arr, 1);
		} else if (kv->type == GGUF_VT_STRING) {
			const uint8_t *s;
			uint64_t slen;
			rc = get_str(p, &s, &slen, UINT64_MAX, "string value");
		} else {
			rc = need(p, vtypes[kv->type].size, "value");
			if (!rc && kv->type == GGUF_VT_BOOL)
				rc = check_bools(p, kv->val, 1, true);
			p->pos += rc ? 0 : vtypes[kv->type].size;
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* general.alignment: llama.cpp insists on u32; converters have written other
 * integer widths, and any integer states the same fact, so accept them. */
static int parse_alignment(struct parser *p)
{
	struct gguf *g = p->g;
	g->alignment = GGUF_DEFAULT_ALIGNMENT;
	const struct gguf_kv *kv = kv_find(g, "general.alignment");
	if (!kv)
		return 0;
	snprintf(p->field, sizeof(p->field), "key 'general.alignment'");
	if (!vtypes[kv->type].is_int)
		return pfail(p, -EINVAL, "must be an integer, found %s", vtypes[kv->type].name);
	bool neg;
	uint64_t a;
	int64_t sa;
	int_read(kv->type, kv->val, &neg, &a, &sa);
	if (neg)
		return pfail(p, -EINVAL, "alignment %" PRId64 " is negative", sa);
	if (a == 0 || (a & (a - 1)) || a > GGUF_MAX_ALIGNMENT)
		return pfail(p, -EINVAL, "alignment %" PRIu64
			     " is not a power of two in 1..%u", a, GGUF_MAX_ALIGNMENT);
	g->alignment = a;
	return 0;
}

static int parse_tensor_info(struct parser *p, uint64_t i)
{
	struct gguf *g = p->g;
	struct gguf_tensor *t = &g->tensors[i];
	int rc;

	snprintf(p->field, sizeof(p->field), "tensor %" PRIu64 " name", i);
	if ((rc = read_name(p, GGUF_MAX_NAME_LEN, "name", "tensor", &t->name)))
		return rc;
	int32_t first = tensor_put(g, i);
	if ((uint64_t)first != i)
		return pfail(p, -EINVAL, "duplicate tensor name (tensors %" PRId32 " and %" PRIu64 ")",
			     first, i);

	if ((rc = get_u32(p, &t->n_dims, "n_dims")))
		return rc;
	if (t->n_dims > GGUF_MAX_DIMS)
		return pfail(p, -EINVAL, "n_dims %" PRIu32 " exceeds %d", t->n_dims, GGUF_MAX_DIMS);
	t->n_elems = 1;
	for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
		t->ne[d] = 1;
		if (d >= t->n_dims)
			continue;
		if ((rc = get_u64(p, &t->ne[d], "dimension")))
			return rc;
		/* ggml keeps dimensions as int64_t; 0 would make an empty
		 * tensor whose row count divides by zero in consumers. */
		if (t->ne[d] == 0 || t->ne[d] > INT64_MAX)
			return pfail(p, -EINVAL, "dimension %" PRIu32 " is %" PRIu64
				     " (must be 1..INT64_MAX)", d, t->ne[d]);
		if (ck_mul(t->n_elems, t->ne[d], &t->n_elems) || t->n_elems > INT64_MAX)
			return pfail(p, -EINVAL, "element count overflows at dimension %"
				     PRIu32 " (%" PRIu64 ")", d, t->ne[d]);
	}

	if ((rc = get_u32(p, &t->type, "type")))
		return rc;
	const struct qtype_info *qi = qtype_info(t->type);
	if (!qi || qi->block_elems == 0)
		return pfail(p, -EINVAL, "unknown tensor type id %" PRIu32, t->type);
	if (t->ne[0] % qi->block_elems)
		return pfail(p, -EINVAL, "ne[0] = %" PRIu64 " is not a multiple of the %s block"
			     " size %" PRIu32, t->ne[0], qi->name, qi->block_elems);
	uint64_t row_bytes;
	if ((rc = qtype_row_bytes(t->type, t->ne[0], &row_bytes, p->err))) {
		smk_err_prefix(p->err, "%s: %s", g->path, p->field);
		return rc;
	}
	if (ck_mul(row_bytes, t->n_elems / t->ne[0], &t->nbytes))
		return pfail(p, -EINVAL, "byte size overflows (%" PRIu64 " rows of %" PRIu64
			     " bytes)", t->n_elems / t->ne[0], row_bytes);

	uint64_t off;
	if ((rc = get_u64(p, &off, "offset")))
		return rc;
	if (off % g->alignment)
		return pfail(p, -EINVAL, "data offset %" PRIu64 " is not a multiple of the"
			     " alignment %" PRIu64, off, g->alignment);
	t->file_offset = off;   /* relative for now; made absolute later */
	return 0;
}

static int cmp_by_offset(const void *a, const void *b)
{
	const struct gguf_tensor *x = *(const struct gguf_tensor *const *)a;
	const struct gguf_tensor *y = *(const struct gguf_tensor *const *)b;
	return x->file_offset < y->file_offset ? -1 : x->file_offset > y->file_offset;
}

static int parse_tensors(struct parser *p)
{
	struct gguf *g = p->g;
	int rc;

	g->tensors = calloc((size_t)g->n_tensors + 1, sizeof(*g->tensors));
	if (!g->tensors || smk_hindex_init(&g->t_index, g->n_tensors))
		return smk_fail(p->err, -ENOMEM, "%s: out of memory for %" PRIu64 " tensors",
				g->path, g->n_tensors);
	for (uint64_t i = 0; i < g->n_tensors; i++)
		if ((rc = parse_tensor_info(p, i)))
			return rc;

	snprintf(p->field, sizeof(p->field), "data section");
	if (ck_align(p->pos, g->alignment, &g->data_offset))
		return pfail(p, -EINVAL, "start overflows");
	if (g->n_tensors == 0 || p->external)
		return 0;   /* built images: gguf_build.c binds the data itself */
	if (g->data_offset > g->size)
		return pfail(p, -EINVAL, "start %" PRIu64 " (tensor infos end at %" PRIu64
			     ", aligned to %" PRIu64 ") is past end of file (%" PRIu64 " bytes)",
			     g->data_offset, p->pos, g->alignment, g->size);
	for (uint64_t o = p->pos; o < g->data_offset; o++)
		if (g->base[o])
			return pfail(p, -EINVAL, "padding byte at offset %" PRIu64 " is %#x, not 0:"
				     " the data start (%" PRIu64 ") is misaligned or the tensor"
				     " infos are corrupt", o, g->base[o], g->data_offset);

	for (uint64_t i = 0; i < g->n_tensors; i++) {
		struct gguf_tensor *t = &g->tensors[i];
		uint64_t start, end;
		snprintf(p->field, sizeof(p->field), "tensor '%s'", t->name);
		if (ck_add(g->data_offset, t->file_offset, &start) ||
		    ck_add(start, t->nbytes, &end))
			return pfail(p, -EINVAL, "data offset %" PRIu64 " + size %" PRIu64
				     " overflows", t->file_offset, t->nbytes);
		if (end > g->size)
			return pfail(p, -EINVAL, "data [%" PRIu64 ", %" PRIu64 ") runs past end"
				     " of file (%" PRIu64 " bytes)", start, end, g->size);
		t->file_offset = start;
		t->data = g->base + start;
	}

	/* Overlap: sort by start, then each must end before the next begins. */
	const struct gguf_tensor **by_off = malloc((size_t)g->n_tensors * sizeof(*by_off));
	if (!by_off)
		return smk_fail(p->err, -ENOMEM, "%s: out of memory", g->path);
	for (uint64_t i = 0; i < g->n_tensors; i++)
		by_off[i] = &g->tensors[i];
	qsort(by_off, (size_t)g->n_tensors, sizeof(*by_off), cmp_by_offset);
	rc = 0;
	for (uint64_t i = 1; i < g->n_tensors && !rc; i++) {
		const struct gguf_tensor *a = by_off[i - 1], *b = by_off[i];
		if (a->file_offset + a->nbytes > b->file_offset)
			rc = smk_fail(p->err, -EINVAL, "%s: tensor '%s': data [%" PRIu64 ", %"
				      PRIu64 ") overlaps tensor '%s' at [%" PRIu64 ", %" PRIu64 ")",
				      g->path, b->name, b->file_offset,
				      b->file_offset + b->nbytes, a->name, a->file_offset,
				      a->file_offset + a->nbytes);
	}
	free(by_off);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Open / close                                                             */

void gguf_close(struct gguf *g)
{
	if (!g)
		return;
	if (g->base && g->image_owned)
		free((void *)g->base);
	else if (g->base)
		smk_unmap_file(g->base, g->size);
	for (size_t i = 0; i < g->n_owned; i++)
		free(g->owned[i]);
	for (int i = 0; g->remote && i < gguf_n_sources(g); i++)
		osrc_free(g->remote[i]);
	free(g->remote);
	ostore_free(g->store);
	if (g->on_close)
		g->on_close(g->on_close_arg);
	free(g->owned);
	for (int i = 0; i < g->n_sources; i++)
		free(g->sources[i]);
	free(g->sources);
	while (g->pool) {
		struct pool_blk *b = g->pool;
		g->pool = b->next;
		free(b);
	}
	free(g->kv);
	free(g->tensors);
	smk_hindex_deinit(&g->kv_index);
	smk_hindex_deinit(&g->t_index);
	free(g->path);
	free(g);
}

int gguf_open(struct gguf **out, const char *path, struct smk_err *err)
{
	*out = NULL;
	struct gguf *g = calloc(1, sizeof(*g));
	if (!g || !(g->path = strdup(path))) {
		free(g);
		return smk_fail(err, -ENOMEM, "%s: out of memory", path);
	}

	int rc = smk_map_file(path, "header field 'magic': file is empty", &g->base, &g->size, err);
	if (!rc)
		rc = gguf_parse(g, false, err);
	if (rc) {
		gguf_close(g);
		return rc;
	}
	*out = g;
	return 0;
}

int gguf_parse(struct gguf *g, bool external, struct smk_err *err)
{
	struct parser p = { .g = g, .pos = 0, .external = external, .err = err };
	int rc = parse_header(&p);
	if (!rc)
		rc = parse_kvs(&p);
	if (!rc)
		rc = parse_alignment(&p);
	if (!rc)
		rc = parse_tensors(&p);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Accessors                                                                */

const char *gguf_path(const struct gguf *g) { return g->path; }
int gguf_n_sources(const struct gguf *g) { return g->n_sources ? g->n_sources : 1; }

const char *gguf_source_path(const struct gguf *g, int i)
{
	if (!g->n_sources)
		return i == 0 ? g->path : NULL;
	return i >= 0 && i < g->n_sources ? g->sources[i] : NULL;
}
struct osrc *gguf_source_remote(const struct gguf *g, int i)
{
	return g->remote && i >= 0 && i < gguf_n_sources(g) ? g->remote[i] : NULL;
}

/* Whole fetch chunks around [off, off+n) of the mapping readable again. */
static void unguard(const struct gguf *g, uint64_t off, uint64_t n)
{
	if (!g->guarded || !n)
		return;
	uint64_t lo = off / OSRC_CHUNK * OSRC_CHUNK;
	uint64_t hi = (off + n + OSRC_CHUNK - 1) / OSRC_CHUNK * OSRC_CHUNK;
	if (hi > g->size)
		hi = g->size;
	mprotect((void *)(g->base + lo), (size_t)(hi - lo), PROT_READ);
}

void gguf_guard_unfetched(struct gguf *g, uint64_t fetched)
{
	uint64_t lo = (fetched + OSRC_CHUNK - 1) / OSRC_CHUNK * OSRC_CHUNK;
	if (g->image_owned || g->n_sources || lo >= g->size)
		return;
	if (mprotect((void *)(g->base + lo), (size_t)(g->size - lo), PROT_NONE) == 0)
		g->guarded = true;
}

int gguf_pin(const struct gguf *g, int source, uint64_t off, uint64_t n, struct smk_err *err)
{
	struct osrc *s = gguf_source_remote(g, source);
	int rc = s ? osrc_pin(s, off, n, err) : 0;
	if (!rc && s && source == 0)
		unguard(g, off, n);
	return rc;
}

int gguf_pin_all(const struct gguf *g, struct smk_err *err)
{
	int rc = 0;
	for (int i = 0; g->remote && i < gguf_n_sources(g) && !rc; i++)
		if (g->remote[i])
			rc = osrc_pin(g->remote[i], 0, osrc_size(g->remote[i]), err);
	if (!rc)
		unguard(g, 0, g->size);
	return rc;
}

int gguf_attach_remote(struct gguf *g, struct ostore *store, struct osrc **remote, const char *name,
		       struct smk_err *err)
{
	char *p = strdup(name);
	if (!p)
		return smk_fail(err, -ENOMEM, "out of memory");
	free(g->path);
	g->path = p;
	g->remote = remote;
	g->store = store;
	return 0;
}

uint32_t gguf_version(const struct gguf *g) { return g->version; }
uint64_t gguf_file_size(const struct gguf *g) { return g->size; }
const void *gguf_base(const struct gguf *g) { return g->base; }
uint64_t gguf_data_offset(const struct gguf *g) { return g->data_offset; }
uint64_t gguf_alignment(const struct gguf *g) { return g->alignment; }
uint64_t gguf_n_kv(const struct gguf *g) { return g->n_kv; }
uint64_t gguf_n_tensors(const struct gguf *g) { return g->n_tensors; }

bool gguf_has(const struct gguf *g, const char *key)
{
	return kv_find(g, key) != NULL;
}

const char *gguf_kv_key(const struct gguf *g, uint64_t i)
{
	return i < g->n_kv ? g->kv[i].key : NULL;
}

enum gguf_vtype gguf_kv_type(const struct gguf *g, uint64_t i)
{
	return i < g->n_kv ? (enum gguf_vtype)g->kv[i].type : GGUF_VT_COUNT;
}

static void arr_view(const struct gguf_anode *node, struct gguf_arr *out)
{
	out->elem = (enum gguf_vtype)node->elem;
	out->n = node->n;
	out->opaque = node;
}

int gguf_kv_arr(const struct gguf *g, uint64_t i, struct gguf_arr *out)
{
	if (i >= g->n_kv || g->kv[i].type != GGUF_VT_ARRAY)
		return -EINVAL;
	arr_view(&g->kv[i].arr, out);
	return 0;
}

/* Decode an integer element of type t at p as either u64 or i64. */
static void int_read(uint32_t t, const uint8_t *p, bool *neg, uint64_t *u, int64_t *s)
{
	switch (t) {
	case GGUF_VT_U8: *s = p[0]; break;
	case GGUF_VT_I8: *s = (int8_t)p[0]; break;
	case GGUF_VT_U16: *s = rd16(p); break;
	case GGUF_VT_I16: *s = (int16_t)rd16(p); break;
	case GGUF_VT_U32: *s = rd32(p); break;
	case GGUF_VT_I32: *s = (int32_t)rd32(p); break;
	case GGUF_VT_I64: *s = (int64_t)rd64(p); break;
	case GGUF_VT_U64:
		*u = rd64(p);
		*neg = false;
		*s = *u > INT64_MAX ? INT64_MAX : (int64_t)*u;
		return;
	default: *s = 0; break;
	}
	*neg = *s < 0;
	*u = (uint64_t)*s;
}

static double float_read(uint32_t t, const uint8_t *p)
{
	if (t == GGUF_VT_F32) {
		float f;
		memcpy(&f, p, 4);
		return f;
	}
	double d;
	memcpy(&d, p, 8);
	return d;
}

/* Common head of the typed getters: find key, check its type class. */
static int kv_lookup(const struct gguf *g, const char *key, const struct gguf_kv **kv,
		     bool (*ok)(uint32_t), const char *want, struct smk_err *err)
{
	*kv = kv_find(g, key);
	if (!*kv)
		return smk_fail(err, -ENOENT, "%s: key '%s' not found", g->path, key);
	if (!ok((*kv)->type))
		return smk_fail(err, -EINVAL, "%s: key '%s': expected %s, found %s",
				g->path, key, want, vtypes[(*kv)->type].name);
	return 0;
}

static bool is_int(uint32_t t) { return vtypes[t].is_int; }
static bool is_float(uint32_t t) { return t == GGUF_VT_F32 || t == GGUF_VT_F64; }
static bool is_bool(uint32_t t) { return t == GGUF_VT_BOOL; }
static bool is_str(uint32_t t) { return t == GGUF_VT_STRING; }
static bool is_arr(uint32_t t) { return t == GGUF_VT_ARRAY; }

static int get_int(const struct gguf *g, const char *key, bool *neg, uint64_t *u,
		   int64_t *s, struct smk_err *err)
{
	const struct gguf_kv *kv;
	int rc = kv_lookup(g, key, &kv, is_int, "an integer", err);
	if (!rc)
		int_read(kv->type, kv->val, neg, u, s);
	return rc;
}

int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out, struct smk_err *err)
{
	bool neg;
	uint64_t u;
	int64_t s;
	int rc = get_int(g, key, &neg, &u, &s, err);
	if (rc)
		return rc;
	if (neg || u > UINT32_MAX)
		return smk_fail(err, -EINVAL, "%s: key '%s': value %s%" PRIu64 " is out of"
				" range for u32", g->path, key, neg ? "-" : "",
				neg ? -(uint64_t)s : u);
	*out = (uint32_t)u;
	return 0;
}

int gguf_get_u64(const struct gguf *g, const char *key, uint64_t *out, struct smk_err *err)
{
	bool neg;
	uint64_t u;
	int64_t s;
	int rc = get_int(g, key, &neg, &u, &s, err);
	if (rc)
		return rc;
	if (neg)
		return smk_fail(err, -EINVAL, "%s: key '%s': value -%" PRIu64 " is out of"
				" range for u64", g->path, key, -(uint64_t)s);
	*out = u;
	return 0;
}

int gguf_get_i64(const struct gguf *g, const char *key, int64_t *out, struct smk_err *err)
{
	bool neg;
	uint64_t u;
	int64_t s;
	int rc = get_int(g, key, &neg, &u, &s, err);
	if (rc)
		return rc;
	if (!neg && u > INT64_MAX)
		return smk_fail(err, -EINVAL, "%s: key '%s': value %" PRIu64 " is out of"
				" range for i64", g->path, key, u);
	*out = s;
	return 0;
}

int gguf_get_f64(const struct gguf *g, const char *key, double *out, struct smk_err *err)
{
	const struct gguf_kv *kv;
	int rc = kv_lookup(g, key, &kv, is_float, "f32 or f64", err);
	if (!rc)
		*out = float_read(kv->type, kv->val);
	return rc;
}

int gguf_get_f32(const struct gguf *g, const char *key, float *out, struct smk_err *err)
{
	double d;
	int rc = gguf_get_f64(g, key, &d, err);
	if (rc)
		return rc;
	if (isfinite(d) && fabs(d) > FLT_MAX)
		return smk_fail(err, -EINVAL, "%s: key '%s': value %g is out of range for f32",
				g->path, key, d);
	*out = (float)d;
	return 0;
}

int gguf_get_bool(const struct gguf *g, const char *key, bool *out, struct smk_err *err)
{
	const struct gguf_kv *kv;
	int rc = kv_lookup(g, key, &kv, is_bool, "bool", err);
	if (!rc)
		*out = kv->val[0] != 0;
	return rc;
}

int gguf_get_str(const struct gguf *g, const char *key, const char **s, size_t *len,
		 struct smk_err *err)
{
	const struct gguf_kv *kv;
	int rc = kv_lookup(g, key, &kv, is_str, "string", err);
	if (!rc) {
		*len = (size_t)rd64(kv->val);
		*s = (const char *)kv->val + 8;
	}
	return rc;
}

int gguf_get_arr(const struct gguf *g, const char *key, struct gguf_arr *out,
		 struct smk_err *err)
{
	const struct gguf_kv *kv;
	int rc = kv_lookup(g, key, &kv, is_arr, "array", err);
	if (!rc)
		arr_view(&kv->arr, out);
	return rc;
}

/* Array element accessors.  The node was validated at open, so the only
 * checks left are the index and the element type. */

static const struct gguf_anode *arr_node(const struct gguf_arr *a, uint64_t i)
{
	const struct gguf_anode *n = a ? a->opaque : NULL;
	return n && i < n->n ? n : NULL;
}

int gguf_arr_str(const struct gguf_arr *a, uint64_t i, const char **s, size_t *len)
{
	const struct gguf_anode *n = arr_node(a, i);
	if (!n || n->elem != GGUF_VT_STRING)
		return -EINVAL;
	const uint8_t *p = n->data + n->stride_off[i / GGUF_STR_STRIDE];
	for (uint64_t k = i % GGUF_STR_STRIDE; k; k--)
		p += 8 + rd64(p);
	*len = (size_t)rd64(p);
	*s = (const char *)p + 8;
	return 0;
}

int gguf_arr_f64(const struct gguf_arr *a, uint64_t i, double *out)
{
	const struct gguf_anode *n = arr_node(a, i);
	if (!n || !is_float(n->elem))
		return -EINVAL;
	*out = float_read(n->elem, n->data + i * vtypes[n->elem].size);
	return 0;
}

int gguf_arr_f32(const struct gguf_arr *a, uint64_t i, float *out)
{
	double d;
	int rc = gguf_arr_f64(a, i, &d);
	if (rc)
		return rc;
	if (isfinite(d) && fabs(d) > FLT_MAX)
		return -EINVAL;
	*out = (float)d;
	return 0;
}

int gguf_arr_i64(const struct gguf_arr *a, uint64_t i, int64_t *out)
{
	const struct gguf_anode *n = arr_node(a, i);
	if (!n || !is_int(n->elem))
		return -EINVAL;
	bool neg;
	uint64_t u;
	int64_t s;
	int_read(n->elem, n->data + i * vtypes[n->elem].size, &neg, &u, &s);
	if (!neg && u > INT64_MAX)
		return -EINVAL;
	*out = s;
	return 0;
}

int gguf_arr_u64(const struct gguf_arr *a, uint64_t i, uint64_t *out)
{
	const struct gguf_anode *n = arr_node(a, i);
	if (!n || !is_int(n->elem))
		return -EINVAL;
	bool neg;
	int64_t s;
	int_read(n->elem, n->data + i * vtypes[n->elem].size, &neg, out, &s);
	return neg ? -EINVAL : 0;
}

int gguf_arr_bool(const struct gguf_arr *a, uint64_t i, bool *out)
{
	const struct gguf_anode *n = arr_node(a, i);
	if (!n || n->elem != GGUF_VT_BOOL)
		return -EINVAL;
	*out = n->data[i] != 0;
	return 0;
}

int gguf_arr_arr(const struct gguf_arr *a, uint64_t i, struct gguf_arr *out)
{
	const struct gguf_anode *n = arr_node(a, i);
	if (!n || n->elem != GGUF_VT_ARRAY)
		return -EINVAL;
	arr_view(&n->kids[i], out);
	return 0;
}

const void *gguf_arr_data(const struct gguf_arr *a)
{
	const struct gguf_anode *n = a ? a->opaque : NULL;
	if (!n || n->elem == GGUF_VT_STRING || n->elem == GGUF_VT_ARRAY)
		return NULL;
	return n->data;
}

const struct gguf_tensor *gguf_tensor(const struct gguf *g, uint64_t i)
{
	return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name)
{
	if (!name)
		return NULL;
	struct name_key k = { g, name };
	int32_t e = smk_hindex_find(&g->t_index, smk_fnv1a64_str(name), tensor_eq, &k);
	return e < 0 ? NULL : &g->tensors[e];
}

/* ------------------------------------------------------------------------ */
/* Dump                                                                     */

#define DUMP_STR_MAX 48     /* bytes of a string shown */
#define DUMP_ARR_MAX 6      /* elements of an array shown */

static void dump_str(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len && i < DUMP_STR_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);   /* UTF-8 bytes pass through */
	}
	fputc('"', f);
	if (len > DUMP_STR_MAX)
		fprintf(f, "...(%zu bytes)", len);
}

static void dump_scalar(FILE *f, uint32_t t, const uint8_t *p)
{
	bool neg;
	uint64_t u;
	int64_t s;
	if (vtypes[t].is_int) {
		int_read(t, p, &neg, &u, &s);
		if (neg)
			fprintf(f, "%" PRId64, s);
		else
			fprintf(f, "%" PRIu64, u);
	} else if (is_float(t)) {
		fprintf(f, "%.9g", float_read(t, p));
	} else if (t == GGUF_VT_BOOL) {
		fputs(p[0] ? "true" : "false", f);
	} else if (t == GGUF_VT_STRING) {
		dump_str(f, (const char *)p + 8, (size_t)rd64(p));
	}
}

static void dump_arr(FILE *f, const struct gguf_arr *a)
{
	const struct gguf_anode *n = a->opaque;
	fprintf(f, "[%s x %" PRIu64 "]", vtypes[n->elem].name, n->n);
	if (!n->n)
		return;
	fputs(" {", f);
	for (uint64_t i = 0; i < n->n && i < DUMP_ARR_MAX; i++) {
		if (i)
			fputs(", ", f);
		if (n->elem == GGUF_VT_ARRAY) {
			struct gguf_arr sub;
			gguf_arr_arr(a, i, &sub);
			dump_arr(f, &sub);
		} else if (n->elem == GGUF_VT_STRING) {
			const char *s;
			size_t len;
			gguf_arr_str(a, i, &s, &len);
			dump_str(f, s, len);
		} else {
			dump_scalar(f, n->elem, n->data + i * vtypes[n->elem].size);
		}
	}
	fputs(n->n > DUMP_ARR_MAX ? ", ...}" : "}", f);
}

void gguf_dump(const struct gguf *g, FILE *f)
{
	fprintf(f, "%s: GGUF v%" PRIu32 ", %" PRIu64 " bytes, %" PRIu64 " keys, %" PRIu64
		" tensors, alignment %" PRIu64 ", data at %" PRIu64 "\n", g->path, g->version,
		g->size, g->n_kv, g->n_tensors, g->alignment, g->data_offset);
	for (uint64_t i = 0; i < g->n_kv; i++) {
		const struct gguf_kv *kv = &g->kv[i];
		char pk[96];
		fprintf(f, "  kv %4" PRIu64 " %-48s %-6s = ", i,
			smk_printable(pk, sizeof(pk), kv->key, strlen(kv->key)),
			vtypes[kv->type].name);
		if (kv->type == GGUF_VT_ARRAY) {
			struct gguf_arr a;
			arr_view(&kv->arr, &a);
			dump_arr(f, &a);
		} else {
			dump_scalar(f, kv->type, kv->val);
		}
		fputc('\n', f);
	}
	uint64_t total = 0;
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct gguf_tensor *t = &g->tensors[i];
		char shape[96];
		int o = snprintf(shape, sizeof(shape), "[");
		for (uint32_t d = 0; d < t->n_dims; d++)
			o += snprintf(shape + o, sizeof(shape) - (size_t)o, "%s%" PRIu64,
				      d ? ", " : "", t->ne[d]);
		snprintf(shape + o, sizeof(shape) - (size_t)o, "]");
		char pn[96];
		fprintf(f, "  tensor %4" PRIu64 " %-40s %-5s %-24s offset %12" PRIu64
			" bytes %12" PRIu64 "\n", i,
			smk_printable(pn, sizeof(pn), t->name, strlen(t->name)),
			qtype_name(t->type), shape,
			t->file_offset, t->nbytes);
		total += t->nbytes;
	}
	fprintf(f, "  %" PRIu64 " tensors, %" PRIu64 " bytes of tensor data\n",
		g->n_tensors, total);
}
