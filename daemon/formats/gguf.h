/* gguf.h - read-only GGUF (v2, v3) reader over mmap.
 *
 * File layout (little-endian), as parsed and validated in gguf.c:
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x  { gguf_str key | u32 value_type | value }
 *   n_tensors x { gguf_str name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
 *   zero padding to general.alignment (default 32) | tensor data
 * gguf_str = u64 length + bytes (no NUL).  Arrays = u32 elem type + u64 count +
 * elements (strings length-prefixed; arrays may nest).
 *
 * gguf_open() validates everything up front (bounds, overflow, duplicates,
 * types, alignment, sizes), so accessors never fail on a well-formed handle
 * and never read outside the mapping.  Tensor data is addressed in place:
 * nothing is copied at open.
 *
 * What gguf_open() accepts, and where it is stricter or looser than
 * llama.cpp's gguf.cpp (each choice explained in gguf.c):
 *   - versions 2 and 3; v1 (different integer widths) and newer versions are
 *     rejected.  The file must be little-endian like the host.
 *   - keys: 1..GGUF_MAX_KEY_LEN bytes, no NUL byte, unique.
 *   - values: every type incl. arrays of arrays, nested at most
 *     GGUF_MAX_ARRAY_DEPTH deep, at most GGUF_MAX_SUBARRAYS arrays nested
 *     inside others in the whole file; bool bytes must be 0 or 1.
 *   - general.alignment: any integer type (llama.cpp: only u32), nonzero power
 *     of two, at most GGUF_MAX_ALIGNMENT; default GGUF_DEFAULT_ALIGNMENT.
 *   - tensors: name 1..GGUF_MAX_NAME_LEN bytes (the spec's 64; llama.cpp
 *     allows 63), no NUL, unique; n_dims 0..4 (0 is a one-element scalar, as
 *     in llama.cpp); every dimension 1..INT64_MAX (llama.cpp also allows 0:
 *     an empty tensor would only feed divisions by zero downstream); element
 *     count <= INT64_MAX; type known to qtype_info(); ne[0] a multiple of the
 *     type's block; offset a multiple of the alignment; data inside the file;
 *     no two tensors' bytes overlap (llama.cpp instead demands they be packed
 *     in file order, which is stricter than safety needs).
 *   - the padding between the tensor infos and the data section must be zero
 *     bytes: a writer that forgot to align the data start is caught there.
 *   - n_kv and n_tensors are bounded by what the file size could hold, and
 *     by GGUF_MAX_KV / GGUF_MAX_TENSORS.
 * The file must not be truncated by someone else while it is open (that would
 * turn reads of the mapping into SIGBUS; no reader over mmap can prevent it).
 */
#ifndef SMK_FORMATS_GGUF_H
#define SMK_FORMATS_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ALIGNMENT (1u << 30)    /* sanity bound, not in the spec */
#define GGUF_MAX_KEY_LEN 65535           /* spec: keys are < 2^16 bytes */
#define GGUF_MAX_NAME_LEN 64             /* spec: tensor names <= 64 bytes */
#define GGUF_MAX_ARRAY_DEPTH 8           /* an array of arrays is depth 2 */
#define GGUF_MAX_SUBARRAYS (1u << 20)    /* arrays inside arrays, whole file */
#define GGUF_MAX_KV (1u << 20)
#define GGUF_MAX_TENSORS (1u << 20)

enum gguf_vtype {
	GGUF_VT_U8 = 0,
	GGUF_VT_I8 = 1,
	GGUF_VT_U16 = 2,
	GGUF_VT_I16 = 3,
	GGUF_VT_U32 = 4,
	GGUF_VT_I32 = 5,
	GGUF_VT_F32 = 6,
	GGUF_VT_BOOL = 7,
	GGUF_VT_STRING = 8,
	GGUF_VT_ARRAY = 9,
	GGUF_VT_U64 = 10,
	GGUF_VT_I64 = 11,
	GGUF_VT_F64 = 12,
	GGUF_VT_COUNT
};

struct gguf;
struct osrc;
struct ostore;

struct gguf_tensor {
	const char *name;          /* NUL-terminated (copied at open) */
	uint32_t n_dims;
	uint64_t ne[GGUF_MAX_DIMS];/* ne[0] is the contiguous dimension; unused = 1 */
	uint32_t type;             /* enum qtype */
	uint64_t n_elems;
	uint64_t nbytes;           /* exact byte size of the data */
	uint64_t file_offset;      /* absolute offset of the data in its source file */
	const void *data;          /* points into the mapping */
	int source;                /* file holding the bytes (gguf_source_path);
	                            * -1: only in memory (a built model's converted
	                            * tensor), read it through data */
};

/* A view of an array value: elements live in the mapping.  Valid until
 * gguf_close() of the handle it came from; copying the struct is fine. */
struct gguf_arr {
	enum gguf_vtype elem;
	uint64_t n;
	const void *opaque;        /* reader-private, for gguf_arr_* accessors */
};

/* Open and validate path.  On success *out owns the mapping; free with
 * gguf_close().  On failure *out is NULL, the return is -EINVAL for a bad
 * file, -ENOMEM, or the errno of open/fstat/mmap (e.g. -ENOENT), and err
 * names the file, the field ("header field 'n_kv'", "key 'x'", "tensor 'y'",
 * "data section") and the reason.  Opening the 262144-token default model
 * takes about a millisecond and ~0.3 MB besides the mapping.
 * All accessors below are const and safe to call from several threads. */
int gguf_open(struct gguf **out, const char *path, struct smk_err *err);
void gguf_close(struct gguf *g);

const char *gguf_path(const struct gguf *g);
/* Files that tensor bytes live in: 1 (the GGUF file itself) for gguf_open,
 * the shards for a built model (gguf_build.h).  NULL if i is out of range. */
int gguf_n_sources(const struct gguf *g);
const char *gguf_source_path(const struct gguf *g, int i);
/* The object in object storage behind source i (objstore/osrc.h), or NULL
 * for a local file: tier-0 reads of a remote source go through osrc_read. */
struct osrc *gguf_source_remote(const struct gguf *g, int i);
/* Make bytes [off, off+n) of source i readable through the mapping (the
 * tensor data pointers): a no-op for a local file; for a remote one they are
 * fetched into its backing file now and kept.  Whoever reads tensor bytes
 * through `data` instead of the weight store calls this first.  0 or a
 * negative code with err naming the URL and the range. */
int gguf_pin(const struct gguf *g, int source, uint64_t off, uint64_t n, struct smk_err *err);
/* Every byte of every source (the resident store reads only the mapping). */
int gguf_pin_all(const struct gguf *g, struct smk_err *err);
/* A GGUF file from object storage: make the mapping's bytes from `fetched`
 * (rounded up to the fetch chunk) to the end unreadable (PROT_NONE) until
 * gguf_pin fetches them, so that a read through the mapping that nobody
 * pinned faults loudly instead of reading the zeros of an unfetched hole. */
void gguf_guard_unfetched(struct gguf *g, uint64_t fetched);
/* Hand the remote objects of a model to g (formats/remote.c): g takes
 * remote[0..gguf_n_sources) (entries may be NULL), the array and store and
 * frees them at gguf_close; the path messages name becomes name. */
int gguf_attach_remote(struct gguf *g, struct ostore *store, struct osrc **remote, const char *name,
		       struct smk_err *err);
uint32_t gguf_version(const struct gguf *g);
uint64_t gguf_file_size(const struct gguf *g);
const void *gguf_base(const struct gguf *g);      /* start of the mapping */
uint64_t gguf_data_offset(const struct gguf *g);  /* start of tensor data */
uint64_t gguf_alignment(const struct gguf *g);    /* general.alignment or 32 */

/* Metadata.  Each getter returns 0, -ENOENT if the key is absent, or -EINVAL
 * with a message naming the key if the value has the wrong type or does not
 * fit.  Integer getters accept any integer value type that is in range. */
bool gguf_has(const struct gguf *g, const char *key);
int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out, struct smk_err *err);
int gguf_get_u64(const struct gguf *g, const char *key, uint64_t *out, struct smk_err *err);
int gguf_get_i64(const struct gguf *g, const char *key, int64_t *out, struct smk_err *err);
/* Float getters accept f32 and f64 values (f64 -> f32 must stay finite). */
int gguf_get_f32(const struct gguf *g, const char *key, float *out, struct smk_err *err);
int gguf_get_f64(const struct gguf *g, const char *key, double *out, struct smk_err *err);
int gguf_get_bool(const struct gguf *g, const char *key, bool *out, struct smk_err *err);
/* *s points into the mapping and is NOT NUL-terminated. */
int gguf_get_str(const struct gguf *g, const char *key, const char **s, size_t *len, struct smk_err *err);
int gguf_get_arr(const struct gguf *g, const char *key, struct gguf_arr *out, struct smk_err *err);

/* Element i of an array: -EINVAL if i >= n, the element type does not match,
 * or the value does not fit the output type.  All are O(1); string element
 * access skips at most 15 length prefixes from an index built at open. */
int gguf_arr_str(const struct gguf_arr *a, uint64_t i, const char **s, size_t *len);
int gguf_arr_f32(const struct gguf_arr *a, uint64_t i, float *out); /* f32, or f64 that fits */
int gguf_arr_i64(const struct gguf_arr *a, uint64_t i, int64_t *out); /* any integer type */
int gguf_arr_arr(const struct gguf_arr *a, uint64_t i, struct gguf_arr *out); /* nested */
int gguf_arr_f64(const struct gguf_arr *a, uint64_t i, double *out); /* f32 or f64 */
int gguf_arr_u64(const struct gguf_arr *a, uint64_t i, uint64_t *out); /* any integer >= 0 */
int gguf_arr_bool(const struct gguf_arr *a, uint64_t i, bool *out);
/* Fixed-size elements (not string/array) are stored packed, little-endian and
 * possibly unaligned: for bulk reads, the first element's address (memcpy
 * from it), or NULL for string and array elements. */
const void *gguf_arr_data(const struct gguf_arr *a);

/* Bytes of one element of a fixed-size type; 0 for string, array, unknown. */
size_t gguf_vtype_size(enum gguf_vtype t);
/* "u8", "i8", ..., "string", "array"; "unknown" out of range. */
const char *gguf_vtype_name(enum gguf_vtype t);

/* Iterate metadata in file order (for dumps). */
uint64_t gguf_n_kv(const struct gguf *g);
const char *gguf_kv_key(const struct gguf *g, uint64_t i);   /* NUL-terminated; NULL if i >= n */
enum gguf_vtype gguf_kv_type(const struct gguf *g, uint64_t i); /* GGUF_VT_COUNT if i >= n */
/* The array value of entry i (-EINVAL if it is not an array). */
int gguf_kv_arr(const struct gguf *g, uint64_t i, struct gguf_arr *out);

/* Tensors. */
uint64_t gguf_n_tensors(const struct gguf *g);
/* In file order; NULL if i >= n.  Lookup by name is hashed; NULL if absent.
 * A tensor with n_dims == 0 is a one-element scalar (ne[] all 1). */
const struct gguf_tensor *gguf_tensor(const struct gguf *g, uint64_t i);
const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name);

/* Human-readable dump for debugging (`smoked --dump`): header facts, every
 * key with its value (arrays summarised by type, count and first elements),
 * then the tensor table.  Control bytes in strings are escaped. */
void gguf_dump(const struct gguf *g, FILE *f);

#endif
