/* convert.h - weight dtype normalisation (memory.default_dtype).
 *
 * Float weights (F32, F16, BF16) can be converted at load to one type, so
 * that a model published in float32 costs half the bytes per token, or to
 * Q8_0 (8.5 bits per weight, a quarter of float32) where accuracy allows.
 * Rounding: F16 and BF16 round to nearest even (as torch's .to() does);
 * Q8_0 stores d = amax/127 as fp16 and q = round(x/d), ties away from zero,
 * as ggml's reference quantiser does. */
#ifndef SMK_QUANT_CONVERT_H
#define SMK_QUANT_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

enum convert_dtype {
	CONVERT_AUTO,        /* keep the file's type */
	CONVERT_F32, CONVERT_F16, CONVERT_BF16,
	CONVERT_Q8_0,
};

/* The qtype a weight of type `from` with rows of ne0 values becomes under
 * dtype d: `from` itself when nothing is to be done (AUTO, the same type,
 * a quantised source, or Q8_0 asked for rows that are not whole blocks). */
uint32_t convert_target(uint32_t from, int64_t ne0, enum convert_dtype d);

/* Convert n values (a whole number of rows) from src (type from: F32, F16
 * or BF16) into dst (type to: F32, F16, BF16 or Q8_0).  Returns 0, or
 * -EINVAL for a pair it cannot convert.  No allocation. */
int convert_rows(uint32_t from, const void *src, uint32_t to, void *dst, int64_t n);

/* "auto", "float32", ... for messages and /stats. */
const char *convert_dtype_name(enum convert_dtype d);

#endif
