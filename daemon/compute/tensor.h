/* tensor.h - a read-only view of one weight matrix, wherever it lives (the
 * file mapping, the RAM cache or a device slot).  Rows are ne0 values long and
 * stored in the quantised layout of `type` (enum qtype); a 1-D tensor is one
 * row (ne1 = 1). */
#ifndef SMK_COMPUTE_TENSOR_H
#define SMK_COMPUTE_TENSOR_H

#include <stdint.h>

struct wtensor {
	const char *name;
	uint32_t type;
	int64_t ne0;          /* values per row (the contiguous dimension) */
	int64_t ne1;          /* rows */
	uint64_t row_bytes;
	uint64_t nbytes;
	uint64_t file_offset; /* where the bytes live in their source file */
	int source;           /* gguf_source_path index; -1: in memory only */
	const void *data;
};

static inline const void *wtensor_row(const struct wtensor *t, int64_t r)
{
	return (const char *)t->data + (uint64_t)r * t->row_bytes;
}

#endif
