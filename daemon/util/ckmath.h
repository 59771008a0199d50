/* ckmath.h - overflow-checked size arithmetic for untrusted input.
 * Each returns true on overflow (and leaves *out unspecified), so checks read
 * `if (ck_mul(a, b, &n)) return smk_fail(...)`. */
#ifndef SMK_UTIL_CKMATH_H
#define SMK_UTIL_CKMATH_H

#include <stdbool.h>
#include <stdint.h>

static inline bool ck_add(uint64_t a, uint64_t b, uint64_t *out)
{
	return __builtin_add_overflow(a, b, out);
}

static inline bool ck_mul(uint64_t a, uint64_t b, uint64_t *out)
{
	return __builtin_mul_overflow(a, b, out);
}

/* Round v up to a multiple of a power-of-two alignment. */
static inline bool ck_align(uint64_t v, uint64_t align, uint64_t *out)
{
	uint64_t r = v % align;
	return ck_add(v, r ? align - r : 0, out);
}

#endif
