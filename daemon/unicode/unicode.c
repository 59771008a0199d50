/* unicode.c - code point classes, UTF-8 decoding/validation, GPT-2 byte map.
 * See unicode.h for why there are two UTF-8 decoders and the one rule for
 * replacing invalid bytes with U+FFFD. */
#include "unicode/unicode.h"

#include <string.h>

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

size_t unicode_utf8_sanitize(const char *s, size_t len, char *out)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, n = 0, run;
	while (i < len) {
		switch (unicode_utf8_check(u + i, len - i, &run)) {
		case UNICODE_UTF8_OK:
			memcpy(out + n, s + i, run);
			n += run;
			i += run;
			continue;
		case UNICODE_UTF8_INCOMPLETE:
			run = len - i;  /* the end of the input cuts it: one subpart */
			break;
		case UNICODE_UTF8_INVALID:
			break;
		}
		memcpy(out + n, "\xEF\xBF\xBD", 3);
		n += 3;
		i += run;
	}
	return n;
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

/* ------------------------------------------------------------------------- */
/* NFC (tables: unicode_nfc.c)                                               */

enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7,
       LCOUNT = 19, VCOUNT = 21, TCOUNT = 28, NCOUNT = VCOUNT * TCOUNT,
       SCOUNT = LCOUNT * NCOUNT };

static unsigned nfc_ccc(uint32_t cp)
{
	if (cp < 0x300)
		return 0;
	size_t lo = 0, hi = unicode_ccc_n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t c = unicode_ccc[mid] >> 8;
		if (c == cp)
			return unicode_ccc[mid] & 0xff;
		if (c < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* Full canonical decomposition of cp appended at out; returns its length. */
static size_t nfc_decompose(uint32_t cp, uint32_t *out)
{
	if (cp >= SBASE && cp < SBASE + SCOUNT) {
		uint32_t i = cp - SBASE;
		out[0] = LBASE + i / NCOUNT;
		out[1] = VBASE + (i % NCOUNT) / TCOUNT;
		if (i % TCOUNT) {
			out[2] = TBASE + i % TCOUNT;
			return 3;
		}
		return 2;
	}
	if (cp >= 0xC0) {
		size_t lo = 0, hi = unicode_decomp_n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (unicode_decomp[mid][0] == cp) {
				const uint32_t *d = unicode_decomp_cps + (unicode_decomp[mid][1] >> 3);
				size_t n = unicode_decomp[mid][1] & 7;
				for (size_t k = 0; k < n; k++)
					out[k] = d[k];
				return n;
			}
			if (unicode_decomp[mid][0] < cp)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	out[0] = cp;
	return 1;
}

/* Primary composite of (a, b), or 0. */
static uint32_t nfc_compose(uint32_t a, uint32_t b)
{
	if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
		return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
	if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 &&
	    b > TBASE && b < TBASE + TCOUNT)
		return a + (b - TBASE);
	if (b < 0x300)
		return 0;
	size_t lo = 0, hi = unicode_comp_n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const uint32_t *e = unicode_comp[mid];
		if (e[0] == a && e[1] == b)
			return e[2];
		if (e[0] < a || (e[0] == a && e[1] < b))
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* Stable sort of a run of non-starters by class.  Short runs (the normal
 * case) by insertion; long ones by counting, so that a hostile input of a
 * million alternating marks costs linear time, not quadratic. */
static void nfc_sort_run(uint32_t *r, size_t n, uint32_t *tmp)
{
	if (n < 2)
		return;
	if (n <= 16) {
		for (size_t i = 1; i < n; i++) {
			uint32_t c = r[i];
			unsigned k = nfc_ccc(c);
			size_t j = i;
			while (j > 0 && nfc_ccc(r[j - 1]) > k) {
				r[j] = r[j - 1];
				j--;
			}
			r[j] = c;
		}
		return;
	}
	size_t count[257] = { 0 };
	for (size_t i = 0; i < n; i++)
		count[nfc_ccc(r[i]) + 1]++;
	for (int k = 1; k < 257; k++)
		count[k] += count[k - 1];
	for (size_t i = 0; i < n; i++)
		tmp[count[nfc_ccc(r[i])]++] = r[i];
	for (size_t i = 0; i < n; i++)
		r[i] = tmp[i];
}

size_t unicode_nfc(const uint32_t *in, size_t n, uint32_t *out, uint32_t *tmp)
{
	size_t m = 0;
	bool simple = true;
	for (size_t i = 0; i < n && simple; i++)
		simple = in[i] < 0x300;
	if (simple) {
		for (size_t i = 0; i < n; i++)
			out[i] = in[i];
		return n;
	}

	/* 1. Decompose; sort each run of non-starters when it ends. */
	size_t run = 0;         /* start of the current run of non-starters */
	for (size_t i = 0; i < n; i++) {
		size_t d = nfc_decompose(in[i], out + m);
		for (size_t k = 0; k < d; k++, m++) {
			if (nfc_ccc(out[m]) == 0) {
				nfc_sort_run(out + run, m - run, tmp);
				run = m + 1;
			}
		}
	}
	nfc_sort_run(out + run, m - run, tmp);

	/* 2. Compose in place: a character joins the last starter unless a
	 * character between them is a starter or has a class >= its own. */
	size_t w = 0, starter = SIZE_MAX;
	unsigned last = 0;
	for (size_t i = 0; i < m; i++) {
		uint32_t c = out[i];
		unsigned k = nfc_ccc(c);
		if (starter != SIZE_MAX) {
			bool blocked = w - 1 > starter && (last == 0 || last >= k);
			uint32_t comp = blocked ? 0 : nfc_compose(out[starter], c);
			if (comp) {
				out[starter] = comp;
				continue;
			}
		}
		if (k == 0)
			starter = w;
		last = k;
		out[w++] = c;
	}
	return w;
}
