/* gguf_build.h - assemble a GGUF handle in memory.
 *
 * Why: the model loader (arch/model.c) and the tokenizer read a struct gguf.
 * Other formats (a Hugging Face safetensors directory: config.json,
 * tokenizer.json, shards) are translated into the same keys and tensor names
 * llama.cpp's converter would write, so there is one forward implementation
 * and two readers.  The builder serialises the metadata into a GGUF image and
 * runs it through gguf.c's own parser, so a translation mistake (a bad name,
 * shape or type) is caught by the same checks as a bad file.  Tensor bytes are
 * not copied: each tensor points into a source file's mapping, or into a
 * buffer the handle owns (weights converted at load).
 *
 * Errors are sticky: a failed call (out of memory, a bad argument) makes
 * gguf_builder_finish() fail with the first message; the other calls may
 * keep going without checking.
 */
#ifndef SMK_FORMATS_GGUF_BUILD_H
#define SMK_FORMATS_GGUF_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "util/err.h"

struct gguf_builder;

/* path: what gguf_path() of the result says (the model directory). */
int gguf_builder_new(struct gguf_builder **out, const char *path);
/* Frees an unfinished builder and everything it allocated. */
void gguf_builder_free(struct gguf_builder *b);

/* A file tensor bytes live in; returns its index (>= 0) or -ENOMEM. */
int gguf_builder_add_source(struct gguf_builder *b, const char *path);

/* Metadata.  Keys are copied; a duplicate key fails at finish (gguf.c). */
void gguf_builder_set_str(struct gguf_builder *b, const char *key, const char *s, size_t len);
void gguf_builder_set_u32(struct gguf_builder *b, const char *key, uint32_t v);
void gguf_builder_set_i32(struct gguf_builder *b, const char *key, int32_t v);
void gguf_builder_set_f32(struct gguf_builder *b, const char *key, float v);
void gguf_builder_set_bool(struct gguf_builder *b, const char *key, bool v);
/* An array of n fixed-size elements of type elem, packed little-endian. */
void gguf_builder_set_arr(struct gguf_builder *b, const char *key, enum gguf_vtype elem,
			  const void *data, uint64_t n);
/* An array of n strings: begin, then exactly n pushes. */
void gguf_builder_begin_str_arr(struct gguf_builder *b, const char *key, uint64_t n);
void gguf_builder_push_str(struct gguf_builder *b, const char *s, size_t len);

/* A tensor in ggml order (ne[0] contiguous) of qtype `type`.  data points
 * into the mapping of source `source` at file_offset, or source is -1 and
 * data is a buffer from gguf_builder_alloc(). */
void gguf_builder_add_tensor(struct gguf_builder *b, const char *name, uint32_t type,
			     uint32_t n_dims, const uint64_t ne[], const void *data, int source,
			     uint64_t file_offset);

/* n bytes (64-byte aligned) owned by the finished handle; NULL on failure
 * (sticky). */
void *gguf_builder_alloc(struct gguf_builder *b, size_t n);

/* fn(arg) runs when the finished handle is closed (or the builder freed):
 * it releases the mappings tensor data points into. */
void gguf_builder_on_close(struct gguf_builder *b, void (*fn)(void *), void *arg);

/* Parse the assembled metadata (gguf.c's checks), bind the tensors, and
 * free the builder (always, also on failure).  *out as from gguf_open(). */
int gguf_builder_finish(struct gguf_builder *b, struct gguf **out, struct smk_err *err);

#endif
