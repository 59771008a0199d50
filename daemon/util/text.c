/* text.c - untrusted bytes made fit for a message (see text.h). */
#include "util/text.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at s (n > 0 bytes left, s[0] >=
 * 0x80), or 0 if there is none: the Unicode Standard's Table 3-7, which
 * rules out overlong forms, surrogates and code points above U+10FFFF by
 * narrowing the second byte's range after E0, ED, F0 and F4.  (The util
 * layer sits below unicode/, so it cannot borrow that layer's decoder.) */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
	uint8_t c = s[0], lo = 0x80, hi = 0xbf;
	size_t len;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		lo = c == 0xe0 ? 0xa0 : 0x80;
		hi = c == 0xed ? 0x9f : 0xbf;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf;
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < len; k++)
		if ((s[k] & 0xc0) != 0x80)
			return 0;
	return len;
}

const char *smk_printable(char *buf, size_t cap, const void *bytes, size_t len)
{
	if (cap == 0)
		return "";
	if (cap < 4) {
		buf[0] = '\0';
		return buf;
	}
	const uint8_t *s = bytes;
	size_t max = cap - 4, o = 0, i = 0;
	while (i < len) {
		const uint8_t *c = s + i;
		size_t n = c[0] < 0x80 ? 1 : utf8_seq(c, len - i);
		/* C1 controls (U+0080..U+009F, C2 80..C2 9F) act as escapes in
		 * some terminals just as C0 ones do. */
		bool keep = n > 1 ? !(c[0] == 0xc2 && c[1] < 0xa0)
				  : n == 1 && c[0] >= 0x20 && c[0] != 0x7f;
		size_t out = keep ? n : 1;
		if (o + out > max)
			break;
		if (keep)
			memcpy(buf + o, c, n);
		else
			buf[o] = '?';
		o += out;
		i += n ? n : 1;
	}
	if (i < len)
		memcpy(buf + o, "...", 3), o += 3;
	buf[o] = '\0';
	return buf;
}

const char *smk_escape(char *buf, size_t cap, const void *bytes, size_t len, size_t max_in,
		       int flags)
{
	const unsigned char *s = bytes;
	size_t o = 0;
	if (!cap)
		return "";
	/* 8 bytes of room: an escape (4) or the "..." mark (3) and the NUL */
	for (size_t i = 0; i < len && o + 8 < cap; i++) {
		if (i == max_in) {
			o += (size_t)snprintf(buf + o, cap - o, "...");
			break;
		}
		const unsigned c = s[i];
		const bool plain = c >= 0x20 && c != 0x7f &&
				   (!(flags & SMK_ESCAPE_ASCII) || (c < 0x80 && c != '\\'));
		if (plain)
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
	}
	buf[o] = '\0';
	return buf;
}
