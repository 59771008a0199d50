/* unicode.c - code point classes, UTF-8 decoding/validation, GPT-2 byte map.
 * See unicode.h for why there are two UTF-8 decoders. */
#include "model/unicode.h"

uint16_t unicode_flags(uint32_t cp)
{
	if (cp < 256)
		return unicode_latin1[cp];
	if (cp >= UNICODE_MAX_CP)
		return UNICODE_UNDEFINED;
	/* Last range whose start <= cp.  unicode_ranges[0] starts at 0. */
	size_t lo = 0, hi = unicode_ranges_n;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if ((unicode_ranges[mid] >> 11) <= cp)
			lo = mid;
		else
			hi = mid;
	}
	return (uint16_t)(unicode_ranges[lo] & 0x7ff);
}

uint32_t unicode_decode_lenient(const char *s, size_t len, size_t *pos)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = *pos;
	unsigned char b0 = u[i];
	size_t need;
	uint32_t cp;

	if (!(b0 & 0x80)) {
		*pos = i + 1;
		return b0;
	}
	if (!(b0 & 0x40))
		goto invalid;                   /* stray continuation byte */
	if (!(b0 & 0x20)) {
		need = 2;
		cp = b0 & 0x1f;
	} else if (!(b0 & 0x10)) {
		need = 3;
		cp = b0 & 0x0f;
	} else if (!(b0 & 0x08)) {
		need = 4;
		cp = b0 & 0x07;
	} else {
		goto invalid;                   /* 0xF8..0xFF never start a sequence */
	}
	if (len - i < need)
		goto invalid;
	for (size_t k = 1; k < need; k++) {
		if ((u[i + k] & 0xc0) != 0x80)
			goto invalid;
		cp = cp << 6 | (u[i + k] & 0x3f);
	}
	if (cp >= UNICODE_MAX_CP)
		goto invalid;
	*pos = i + need;
	return cp;
invalid:
	*pos = i + 1;
	return UNICODE_REPLACEMENT;
}

size_t unicode_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

enum unicode_utf8_status unicode_utf8_check(const unsigned char *s, size_t n, size_t *len)
{
	unsigned char b0 = s[0];
	size_t need;
	unsigned char lo2 = 0x80, hi2 = 0xbf;   /* allowed range of the second byte */

	if (b0 < 0x80) {
		*len = 1;
		return UNICODE_UTF8_OK;
	}
	if (b0 < 0xc2 || b0 > 0xf4) {
		*len = 1;
		return UNICODE_UTF8_INVALID;
	}
	if (b0 < 0xe0) {
		need = 2;
	} else if (b0 < 0xf0) {
		need = 3;
		if (b0 == 0xe0)
			lo2 = 0xa0;             /* no overlong forms */
		else if (b0 == 0xed)
			hi2 = 0x9f;             /* no surrogates */
	} else {
		need = 4;
		if (b0 == 0xf0)
			lo2 = 0x90;
		else if (b0 == 0xf4)
			hi2 = 0x8f;             /* nothing above U+10FFFF */
	}
	for (size_t k = 1; k < need; k++) {
		if (k >= n)
			return UNICODE_UTF8_INCOMPLETE;
		unsigned char lo = k == 1 ? lo2 : 0x80, hi = k == 1 ? hi2 : 0xbf;
		if (s[k] < lo || s[k] > hi) {
			*len = k;
			return UNICODE_UTF8_INVALID;
		}
	}
	*len = need;
	return UNICODE_UTF8_OK;
}

/* bytes_to_unicode() from GPT-2's encoder.py: printable Latin-1 bytes stand for
 * themselves; the other 68 bytes take 256, 257, ... in byte order. */
uint32_t unicode_gpt2_byte_to_cp(uint8_t b)
{
	if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae)
		return b;
	uint32_t n = 0;
	for (unsigned c = 0; c < b; c++) {
		if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || c >= 0xae))
			n++;
	}
	return 256 + n;
}

int unicode_gpt2_cp_to_byte(uint32_t cp)
{
	if (cp < 256) {
		uint8_t b = (uint8_t)cp;
		return unicode_gpt2_byte_to_cp(b) == cp ? (int)cp : -1;
	}
	if (cp >= 256 + 68)
		return -1;
	uint32_t n = 0;
	for (unsigned c = 0; c < 256; c++) {
		if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || c >= 0xae)) {
			if (256 + n == cp)
				return (int)c;
			n++;
		}
	}
	return -1;
}
