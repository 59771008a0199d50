/* qtype.h - tensor element types as stored in GGUF files (ggml type ids).
 *
 * A quantised tensor row is a sequence of fixed-size blocks; each block holds
 * `block_elems` values in `block_bytes` bytes.  This module knows the layouts
 * (documented in qtype.c next to each decoder) and converts rows to float.
 * The SIMD dot products that the compute backend runs on these layouts live in
 * compute/cpu/qdot*.c; the scalar code here is their reference.
 */
#ifndef SMK_MODEL_QTYPE_H
#define SMK_MODEL_QTYPE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

/* Values are the ggml type ids written in GGUF tensor infos. */
enum qtype {
	QTYPE_F32 = 0,
	QTYPE_F16 = 1,
	QTYPE_Q4_0 = 2,
	QTYPE_Q4_1 = 3,
	QTYPE_Q5_0 = 6,
	QTYPE_Q5_1 = 7,
	QTYPE_Q8_0 = 8,
	QTYPE_Q8_1 = 9,
	QTYPE_Q2_K = 10,
	QTYPE_Q3_K = 11,
	QTYPE_Q4_K = 12,
	QTYPE_Q5_K = 13,
	QTYPE_Q6_K = 14,
	QTYPE_Q8_K = 15,
	QTYPE_BF16 = 30,
	QTYPE_COUNT = 31, /* one past the largest id we know */
};

struct qtype_info {
	const char *name;        /* "Q4_K" */
	uint32_t block_elems;    /* values per block (1 for plain floats) */
	uint32_t block_bytes;    /* bytes per block */
	/* Row decoder, n a multiple of block_elems; NULL if we can size the type
	 * (so a file holding it can still be opened) but not compute with it. */
	void (*dequant_row)(const void *src, float *dst, int64_t n);
};

/* Info for a ggml type id, or NULL if the id is unknown. */
const struct qtype_info *qtype_info(uint32_t id);

/* Name for logs/errors; "unknown" for unknown ids. */
const char *qtype_name(uint32_t id);

/* Bytes of a row of n values: 0 on success, -EINVAL (with message) if the type
 * is unknown, n is not a multiple of the block, or the size overflows. */
int qtype_row_bytes(uint32_t id, uint64_t n, uint64_t *out, struct smk_err *err);

/* True if dequant_row and the CPU dot products exist for this type. */
bool qtype_can_compute(uint32_t id);

#endif
