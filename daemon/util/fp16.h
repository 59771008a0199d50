/* fp16.h - IEEE half and bfloat16 conversions (scalar; hot loops use F16C). */
#ifndef SMK_UTIL_FP16_H
#define SMK_UTIL_FP16_H

#include <stdint.h>
#include <string.h>

static inline float fp32_from_bits(uint32_t w)
{
	float f;
	memcpy(&f, &w, sizeof(f));
	return f;
}

static inline uint32_t fp32_to_bits(float f)
{
	uint32_t w;
	memcpy(&w, &f, sizeof(w));
	return w;
}

/* Exact half -> float, including subnormals, inf and NaN. */
static inline float fp16_to_fp32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;
	if (exp == 0x1f) /* inf, or NaN made quiet as F16C and ggml do */
		return fp32_from_bits(sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0));
	if (exp == 0) {
		if (man == 0)
			return fp32_from_bits(sign);
		/* subnormal: value = man * 2^-24 */
		float v = (float)man * (1.0f / 16777216.0f);
		return sign ? -v : v;
	}
	return fp32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

/* float -> half, round to nearest even. */
static inline uint16_t fp32_to_fp16(float f)
{
	uint32_t x = fp32_to_bits(f);
	uint32_t sign = (x >> 16) & 0x8000;
	uint32_t ax = x & 0x7fffffffu;
	if (ax >= 0x7f800000u) /* inf; NaN keeps its top payload bits, made
				* quiet, as F16C's vcvtps2ph does */
		return (uint16_t)(sign | 0x7c00 |
				  (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
	if (ax >= 0x477ff000u) /* overflows to inf after rounding */
		return (uint16_t)(sign | 0x7c00);
	if (ax < 0x38800000u) { /* subnormal or zero in half */
		float a = fp32_from_bits(ax);
		/* adding 0.5 shifts the value so that rounding happens at 2^-24 */
		uint32_t r = fp32_to_bits(a + 0.5f) - 0x3f000000u;
		return (uint16_t)(sign | r);
	}
	uint32_t mant_odd = (ax >> 13) & 1;
	ax += 0xc8000fffu + mant_odd; /* rebias exponent (-112<<23) and round */
	return (uint16_t)(sign | (ax >> 13));
}

static inline float bf16_to_fp32(uint16_t h)
{
	return fp32_from_bits((uint32_t)h << 16);
}

/* float -> bfloat16, round to nearest even; NaN stays NaN. */
static inline uint16_t fp32_to_bf16(float f)
{
	uint32_t x = fp32_to_bits(f);
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((x >> 16) | 64);
	return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

#endif
