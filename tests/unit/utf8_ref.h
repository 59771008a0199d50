/* utf8_ref.h - UTF-8 as the Unicode Standard defines it (Table 3-7),
 * written out for tests independently of the daemon's decoders, and the
 * biased random bytes the UTF-8 tests feed them. */
#ifndef SMK_TESTS_UTF8_REF_H
#define SMK_TESTS_UTF8_REF_H

#include <stdbool.h>
#include <stddef.h>

/* The length of the well-formed character at s[0..n), or 0 if there is none. */
static inline size_t utf8_ref_len(const unsigned char *s, size_t n)
{
	if (s[0] < 0x80)
		return 1;
	size_t need;
	unsigned lo = 0x80, hi = 0xBF;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		need = 2;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		need = 3;
		if (s[0] == 0xE0) lo = 0xA0;
		if (s[0] == 0xED) hi = 0x9F;
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		need = 4;
		if (s[0] == 0xF0) lo = 0x90;
		if (s[0] == 0xF4) hi = 0x8F;
	} else
		return 0;
	if (n < need || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < need; k++)
		if (s[k] < 0x80 || s[k] > 0xBF)
			return 0;
	return need;
}

static inline bool utf8_ref_wellformed(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t l = utf8_ref_len(s + i, n - i);
		if (!l)
			return false;
		i += l;
	}
	return true;
}

/* A random byte biased towards the ones that matter (a quarter each: any
 * byte, continuation bytes, lead-byte range, ASCII), from a random r. */
static inline unsigned char utf8_ref_byte(unsigned r)
{
	return (unsigned char)(r % 4 == 0 ? r >> 8 : r % 4 == 1 ? 0x80 | ((r >> 8) & 0x3F)
			       : r % 4 == 2 ? 0xC0 | ((r >> 8) & 0x3F) : (r >> 8) & 0x7F);
}

#endif
