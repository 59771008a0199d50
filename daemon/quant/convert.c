/* convert.c - weight dtype normalisation (see convert.h). */
#include "quant/convert.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "quant/qtype.h"
#include "util/fp16.h"

static bool is_float(uint32_t t)
{
	return t == QTYPE_F32 || t == QTYPE_F16 || t == QTYPE_BF16;
}

uint32_t convert_target(uint32_t from, int64_t ne0, enum convert_dtype d)
{
	if (!is_float(from))
		return from;
	switch (d) {
	case CONVERT_F32: return QTYPE_F32;
	case CONVERT_F16: return QTYPE_F16;
	case CONVERT_BF16: return QTYPE_BF16;
	case CONVERT_Q8_0: return ne0 % 32 == 0 ? QTYPE_Q8_0 : from;
	case CONVERT_AUTO: break;
	}
	return from;
}

static float load(uint32_t t, const void *src, int64_t i)
{
	uint16_t h;
	switch (t) {
	case QTYPE_F16:
		memcpy(&h, (const uint16_t *)src + i, 2);
		return fp16_to_fp32(h);
	case QTYPE_BF16:
		memcpy(&h, (const uint16_t *)src + i, 2);
		return bf16_to_fp32(h);
	default: {
		float f;
		memcpy(&f, (const float *)src + i, 4);
		return f;
	}
	}
}

static void q8_0_block(uint32_t from, const void *src, int64_t i0, struct qtype_block_q8_0 *b)
{
	float x[32], amax = 0.0f;
	for (int j = 0; j < 32; j++) {
		x[j] = load(from, src, i0 + j);
		if (fabsf(x[j]) > amax)
			amax = fabsf(x[j]);
	}
	float d = amax / 127.0f;
	float id = d ? 1.0f / d : 0.0f;
	b->d = fp32_to_fp16(d);
	for (int j = 0; j < 32; j++)
		b->qs[j] = (int8_t)roundf(x[j] * id);
}

int convert_rows(uint32_t from, const void *src, uint32_t to, void *dst, int64_t n)
{
	if (!is_float(from) || n < 0)
		return -EINVAL;
	switch (to) {
	case QTYPE_F32:
		for (int64_t i = 0; i < n; i++) {
			float f = load(from, src, i);
			memcpy((float *)dst + i, &f, 4);
		}
		return 0;
	case QTYPE_F16:
	case QTYPE_BF16:
		for (int64_t i = 0; i < n; i++) {
			float f = load(from, src, i);
			uint16_t h = to == QTYPE_F16 ? fp32_to_fp16(f) : fp32_to_bf16(f);
			memcpy((uint16_t *)dst + i, &h, 2);
		}
		return 0;
	case QTYPE_Q8_0:
		if (n % 32)
			return -EINVAL;
		for (int64_t i = 0; i < n; i += 32)
			q8_0_block(from, src, i, (struct qtype_block_q8_0 *)dst + i / 32);
		return 0;
	default:
		return -EINVAL;
	}
}

const char *convert_dtype_name(enum convert_dtype d)
{
	static const char *const names[] = { "auto", "float32", "float16", "bfloat16", "q8_0" };
	return (unsigned)d < sizeof(names) / sizeof(names[0]) ? names[d] : "unknown";
}
