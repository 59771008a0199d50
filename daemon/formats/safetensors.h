/* safetensors.h - read-only safetensors reader over mmap, and model
 * directories made of one or several safetensors files.
 *
 * File layout (https://github.com/huggingface/safetensors, README "Format"):
 *   u64 N, little-endian: the header's byte length
 *   N bytes: a UTF-8 JSON object, beginning with '{' and possibly padded at
 *     the end with spaces (the Python writer pads so that the data section
 *     starts at a multiple of 8):
 *       { "__metadata__": { "key": "value", ... },         (optional)
 *         "<tensor name>": { "dtype": "F32",
 *                            "shape": [d0, d1, ...],        ([] = a scalar)
 *                            "data_offsets": [begin, end] }, ... }
 *   the data section: every byte belongs to exactly one tensor.
 * data_offsets are relative to the first byte after the header; end is one
 * past the last byte.  Shapes are row-major: shape[n_dims-1] is contiguous
 * (the opposite of GGUF's ne[0]).  Data is little-endian; big-endian hosts
 * are not supported (safetensors.c refuses to compile there).
 *
 * st_open() validates everything up front, so accessors never fail on an
 * open handle and every tensor's [data, data + nbytes) lies in the mapping:
 *   - header length 1..ST_MAX_HEADER (the upstream crate's MAX_HEADER_SIZE)
 *     and inside the file; the header begins with '{', is valid UTF-8 and
 *     one JSON object with nothing but JSON whitespace after it;
 *   - no key twice (upstream silently keeps the last one);
 *   - __metadata__, if present, is an object whose values are all strings;
 *   - every other key is a tensor: a non-empty name whose entry is an
 *     object with exactly dtype, shape and data_offsets (upstream ignores
 *     unknown fields; we refuse them so that a misspelt field is not
 *     silently ignored); dtype one of enum st_dtype (upstream's sub-byte
 *     and FNUZ/E8M0/C64 types are refused by name as unsupported); shape an
 *     array of at most ST_MAX_DIMS non-negative integers (upstream has no
 *     rank limit); element and byte counts computed with overflow checks;
 *     data_offsets two non-negative integers, begin <= end <= size of the
 *     data section, end - begin == element count * dtype size;
 *   - sorted by (begin, end), the tensors tile the data section exactly:
 *     no hole, no overlap, nothing after the last tensor (upstream's
 *     InvalidOffset / MetadataIncompleteBuffer).  A tensor with a 0 in its
 *     shape has begin == end and must sit on a boundary of that tiling.
 * A file with no tensors (header "{}", empty data section) is valid.
 *
 * Tensor data is addressed in place; nothing is copied.  It is aligned only
 * as the writer aligned it: the Python writer starts the data section at a
 * multiple of 8 and orders tensors by falling dtype size, so each tensor is
 * aligned to its element size in such files, but a hand-written file may
 * put a tensor at any byte.  Read through memcpy or check the alignment.
 *
 * Memory: names and metadata are copied at open (one block), plus a tensor
 * table and a hash table; the JSON tree is freed before st_open() returns.
 * While parsing, jansson's tree can take ~20x the header's size (a 100 MB
 * header would cost ~2 GB at open); real headers are a few MB at most.
 * The file must not be truncated while it is open (reads of the mapping
 * would raise SIGBUS; no reader over mmap can prevent it).
 */
#ifndef SMK_FORMATS_SAFETENSORS_H
#define SMK_FORMATS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER 100000000u   /* bytes; upstream MAX_HEADER_SIZE */

/* The fixed-size element types smoke reads.  Names in the file are the
 * enumerator names without "ST_" (st_dtype_name()). */
enum st_dtype {
	ST_F64, ST_F32, ST_F16, ST_BF16,
	ST_I64, ST_I32, ST_I16, ST_I8,
	ST_U64, ST_U32, ST_U16, ST_U8,
	ST_BOOL, ST_F8_E4M3, ST_F8_E5M2,
	ST_DTYPE_COUNT
};

struct st_tensor {
	const char *name;        /* NUL-terminated, owned by the file handle */
	enum st_dtype dtype;
	int n_dims;              /* 0..ST_MAX_DIMS; 0 is a one-element scalar */
	uint64_t shape[ST_MAX_DIMS];  /* as in the file: shape[n_dims-1] is
	                               * contiguous; entries >= n_dims are 1 */
	uint64_t n_elems, nbytes;     /* n_elems is 0 if any dimension is 0 */
	uint64_t file_offset;    /* absolute offset of the data in the file */
	const void *data;        /* into the read-only mapping (unaligned in
	                          * general, see above) */
};

struct st_file;

/* Open, map and validate path.  On success *out owns the mapping; free with
 * st_close().  On failure *out is NULL and the return is -EINVAL for a bad
 * file, -ENOMEM, or the errno of open/fstat/mmap (e.g. -ENOENT); err then
 * says "<path>: <where>: <reason>", where is "header length", "header",
 * "__metadata__", "tensor 'name'" or "data section".
 * All accessors are const and safe to call from several threads. */
int st_open(struct st_file **out, const char *path, struct smk_err *err);
void st_close(struct st_file *f);   /* NULL is fine */

const char *st_path(const struct st_file *f);
uint64_t st_file_size(const struct st_file *f);
uint64_t st_data_offset(const struct st_file *f);  /* 8 + header length */

uint64_t st_n_tensors(const struct st_file *f);
/* Sorted by file offset (ties, which only zero-byte tensors make: by end,
 * then by name in strcmp order); NULL if i >= st_n_tensors(). */
const struct st_tensor *st_tensor_at(const struct st_file *f, uint64_t i);
/* Hashed lookup; NULL if absent (or name is NULL). */
const struct st_tensor *st_find(const struct st_file *f, const char *name);

/* __metadata__: the value of key, or NULL if absent.  Linear in the number
 * of entries (a handful in real files).  Entries in file order by index. */
const char *st_metadata(const struct st_file *f, const char *key);
uint64_t st_n_metadata(const struct st_file *f);
/* Entry i; returns -EINVAL (outputs untouched) if i >= st_n_metadata(). */
int st_metadata_at(const struct st_file *f, uint64_t i, const char **key, const char **value);

/* "F32", ...; "unknown" out of range. */
const char *st_dtype_name(enum st_dtype t);
/* Bytes per element; 0 out of range. */
size_t st_dtype_size(enum st_dtype t);
/* The dtype whose name is s; -EINVAL if s names none of enum st_dtype. */
int st_dtype_parse(const char *s, enum st_dtype *out);

/* ------------------------------------------------------------------------ */
/* A model's weights: a directory holding either model.safetensors, or
 * model.safetensors.index.json and the shards it names:
 *   { "metadata": { ... },                        (ignored)
 *     "weight_map": { "<tensor>": "<shard file name>", ... } }
 * As in transformers, model.safetensors wins when both are present.
 * st_set_open() checks, besides each shard as in st_open():
 *   - the index is a JSON object (no duplicate keys) with an object
 *     "weight_map" of at least one entry whose values are strings;
 *   - each shard name is a plain file name in dir: not empty, no '/' or
 *     '\\', not "." or ".." (symlinks are followed: the Hugging Face cache
 *     links snapshot files to its blob store);
 *   - every shard exists (its open errno is returned, e.g. -ENOENT);
 *   - no tensor is in two shards; every tensor the index names is in the
 *     shard it names; every tensor of every shard is in the index.
 * Shards are ordered by file name (so model-00001-of-00003 comes first).
 * Shard files in dir that the index does not name are not opened. */
struct st_set;

/* On success *out owns every shard's mapping; free with st_set_close().
 * On failure *out is NULL and the return is -ENOENT if dir does not exist
 * or holds neither file (the message names both), -ENOTDIR if dir is not a
 * directory, -EINVAL for a bad index or shard, or a shard's open errno
 * (e.g. -ENOENT for a missing shard); messages name the index file (and the
 * tensor and shard at fault) or the shard file. */
int st_set_open(struct st_set **out, const char *dir, struct smk_err *err);
void st_set_close(struct st_set *s);   /* NULL is fine */

const char *st_set_dir(const struct st_set *s);
int st_set_n_files(const struct st_set *s);
/* NULL if i is out of range. */
const struct st_file *st_set_file(const struct st_set *s, int i);
uint64_t st_set_n_tensors(const struct st_set *s);
/* Tensor i over all shards: shard by shard in st_set_file() order, within a
 * shard in st_tensor_at() order.  *file_idx (if file_idx is non-NULL) gets
 * the shard index.  NULL (and *file_idx untouched) if i is out of range. */
const struct st_tensor *st_set_tensor_at(const struct st_set *s, uint64_t i, int *file_idx);
/* Hashed lookup over all shards; NULL if absent. */
const struct st_tensor *st_set_find(const struct st_set *s, const char *name, int *file_idx);

#endif
