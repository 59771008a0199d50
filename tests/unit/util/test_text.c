/* smk_printable tests (util/text.h).  Expected strings are written from the
 * contract in the header and, for what is well-formed UTF-8, from the
 * Unicode Standard's Table 3-7, not from the code; a random run checks the
 * two promises every output keeps: bounded, and well-formed UTF-8 with no
 * control character. */
#include <check.h>

#include "ck_main.h"
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/text.h"
#include "utf8_ref.h"

static void expect_cap(const char *in, size_t n, size_t cap, const char *want)
{
	char buf[256];
	ck_assert_uint_le(cap, sizeof(buf));
	memset(buf, 'Z', sizeof(buf));
	const char *got = smk_printable(buf, cap, in, n);
	ck_assert_ptr_eq(got, buf);
	ck_assert_msg(!strcmp(got, want), "printable(cap %zu) gave '%s', want '%s'", cap, got,
		      want);
	ck_assert_int_eq(buf[cap], 'Z');        /* nothing written past cap */
}

#define EXPECT(lit, want) expect_cap(lit, sizeof(lit) - 1, 64, want)

START_TEST(ascii)
{
	EXPECT("", "");
	EXPECT("hello", "hello");
	EXPECT("model.layers.0.attn_q.weight", "model.layers.0.attn_q.weight");
	EXPECT(" ~", " ~");
}
END_TEST

START_TEST(controls)
{
	/* ESC [ 3 1 m would turn a terminal red; the ESC goes. */
	EXPECT("a\x1b[31m", "a?[31m");
	EXPECT("ab\0c", "ab?c");                 /* NUL is data, not the end */
	EXPECT("\t\n\r\x7f", "????");
	EXPECT("\x01\x1f", "??");
	/* C1 controls (U+0080..U+009F): CSI is U+009B, one '?' per character. */
	EXPECT("x\xc2\x9b" "31m", "x?31m");
	EXPECT("\xc2\x80\xc2\x9f", "??");
	EXPECT("\xc2\xa0", "\xc2\xa0");          /* U+00A0 is no control */
}
END_TEST

START_TEST(utf8_kept)
{
	EXPECT("h\xc3\xa9llo \xe2\x9c\x93", "h\xc3\xa9llo \xe2\x9c\x93");     /* héllo ✓ */
	EXPECT("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");                       /* U+1F600 */
	EXPECT("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");                       /* U+10FFFF */
	EXPECT("\xed\x9f\xbf", "\xed\x9f\xbf");                               /* U+D7FF */
	EXPECT("\xe0\xa0\x80", "\xe0\xa0\x80");                               /* U+0800 */
}
END_TEST

START_TEST(utf8_invalid)
{
	EXPECT("\xff", "?");
	EXPECT("\x80", "?");                     /* a stray continuation byte */
	EXPECT("\xc3", "?");                     /* cut at the end */
	EXPECT("\xc3(", "?(");                   /* cut before ASCII */
	EXPECT("\xc0\xaf", "??");                /* overlong '/' */
	EXPECT("\xe0\x80\xaf", "???");           /* overlong, 3 bytes */
	EXPECT("\xed\xa0\x80", "???");           /* surrogate U+D800 */
	EXPECT("\xf4\x90\x80\x80", "????");      /* above U+10FFFF */
	EXPECT("\xf5\x80\x80\x80", "????");      /* F5 never leads */
	EXPECT("a\xe2\x9c" "b", "a??b");         /* ✓ missing its last byte */
}
END_TEST

START_TEST(length_not_nul)
{
	/* Only len bytes are read: a sequence cut by len is not completed by
	 * the bytes after it. */
	expect_cap("abcdef", 3, 64, "abc");
	expect_cap("ab\xc3\xa9", 3, 64, "ab?");
	expect_cap("GGUF", 4, 16, "GGUF");
	expect_cap("\0\x01GG", 4, 16, "??GG");   /* gguf.c's bad magic */
}
END_TEST

START_TEST(truncation)
{
	/* cap 8 leaves 4 bytes of text, 3 for the mark and 1 for the NUL. */
	expect_cap("abcd", 4, 8, "abcd");
	expect_cap("abcde", 5, 8, "abcd...");
	expect_cap("abcdefghijklmnop", 16, 8, "abcd...");
	/* Never inside a character: é (2 bytes) does not fit after "abc". */
	expect_cap("abc\xc3\xa9", 5, 8, "abc...");
	expect_cap("ab\xc3\xa9z", 5, 8, "ab\xc3\xa9...");
	expect_cap("\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 8, 8, "\xf0\x9f\x98\x80...");
	/* A '?' takes one byte however many bytes it stands for. */
	expect_cap("\xc2\x9b\xc2\x9b\xc2\x9b\xc2\x9b", 8, 8, "????");
	/* The smallest useful buffer: room for the mark only. */
	expect_cap("a", 1, 4, "...");
	expect_cap("", 0, 4, "");
}
END_TEST

START_TEST(tiny_cap)
{
	char buf[4] = { 'Z', 'Z', 'Z', 'Z' };
	ck_assert_str_eq(smk_printable(buf, 0, "abc", 3), "");
	ck_assert_int_eq(buf[0], 'Z');           /* cap 0: nothing written */
	ck_assert_str_eq(smk_printable(buf, 3, "abc", 3), "");
	ck_assert_int_eq(buf[0], '\0');
	ck_assert_int_eq(buf[1], 'Z');
}
END_TEST

/* Well-formed by Table 3-7 (utf8_ref.h), with no C0, DEL or C1 control. */
static bool clean_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t len = utf8_ref_len(s + i, n - i);
		if (!len || s[i] < 0x20 || s[i] == 0x7f || (s[i] == 0xc2 && s[i + 1] <= 0x9f))
			return false;
		i += len;
	}
	return true;
}

START_TEST(random_bytes)
{
	unsigned seed = 12345;
	unsigned char in[64];
	char out[64];
	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)rand_r(&seed) % sizeof(in);
		size_t cap = 4 + (size_t)rand_r(&seed) % (sizeof(out) - 4);
		for (size_t i = 0; i < n; i++)
			in[i] = utf8_ref_byte((unsigned)rand_r(&seed));
		size_t m = strlen(smk_printable(out, cap, in, n));
		ck_assert_uint_lt(m, cap);
		bool cut = m >= 3 && !memcmp(out + m - 3, "...", 3);
		ck_assert_msg(clean_utf8((unsigned char *)out, m), "round %d: bad output", round);
		/* Clean input comes back whole when it fits. */
		if (clean_utf8(in, n) && n <= cap - 4)
			ck_assert(m == n && !memcmp(out, in, n));
		if (n <= cap - 4)
			ck_assert(!cut || (n >= 3 && !memcmp(in + n - 3, "...", 3)));
	}
}
END_TEST

/* smk_escape: the exact bytes, unambiguous in ASCII mode, readable UTF-8
 * otherwise; cut after max_in bytes with "...". */
START_TEST(escape_modes)
{
	char buf[64];
	/* ASCII mode: controls, DEL, the backslash and every byte from 0x80 */
	ck_assert_str_eq(smk_escape(buf, sizeof(buf), "a\\b\n\x7f\xc3\xa9", 7, 40, SMK_ESCAPE_ASCII),
			 "a\\x5cb\\x0a\\x7f\\xc3\\xa9");
	/* NUL is data, not the end */
	ck_assert_str_eq(smk_escape(buf, sizeof(buf), "x\0y", 3, 40, SMK_ESCAPE_ASCII), "x\\x00y");
	/* readable mode: UTF-8 and backslashes as they are, controls escaped */
	ck_assert_str_eq(smk_escape(buf, sizeof(buf), "\\s+\xc3\xa9\t", 6, 60, 0), "\\s+\xc3\xa9\\x09");
	/* max_in: the first max_in bytes, then "..." */
	ck_assert_str_eq(smk_escape(buf, sizeof(buf), "abcdefgh", 8, 5, 0), "abcde...");
	ck_assert_str_eq(smk_escape(buf, sizeof(buf), "abcde", 5, 5, 0), "abcde");
	/* a small buffer stops early, always terminated, never overflows */
	char small[12];
	memset(small, 'Z', sizeof(small));
	const char *r = smk_escape(small, sizeof(small), "\x01\x02\x03\x04", 4, 40, SMK_ESCAPE_ASCII);
	ck_assert_uint_lt(strlen(r), sizeof(small));
	ck_assert_str_eq(r, "\\x01");
	ck_assert_str_eq(smk_escape(small, 0, "a", 1, 40, 0), "");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("printable");
	tcase_add_test(tc, ascii);
	tcase_add_test(tc, controls);
	tcase_add_test(tc, utf8_kept);
	tcase_add_test(tc, utf8_invalid);
	tcase_add_test(tc, length_not_nul);
	tcase_add_test(tc, truncation);
	tcase_add_test(tc, tiny_cap);
	tcase_add_test(tc, random_bytes);
	tcase_add_test(tc, escape_modes);
	suite_add_tcase(s, tc);
	return ck_run(s);
}
