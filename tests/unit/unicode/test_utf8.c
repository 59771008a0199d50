/* UTF-8 tests: unicode_utf8_sanitize, the daemon's one U+FFFD rule
 * (unicode.h).  Expected outputs come from the Unicode Standard's examples
 * (chapter 3, "U+FFFD Substitution of Maximal Subparts", Table 3-8) and from
 * the definition of a well-formed sequence (Table 3-7), not from the code;
 * a random run checks that every output is well-formed and that
 * well-formed input comes back unchanged. */
#include <check.h>

#include "ck_main.h"
#include <stdlib.h>
#include <string.h>

#include "unicode/unicode.h"
#include "utf8_ref.h"

#define R "\xEF\xBF\xBD"

static void expect(const char *in, size_t n, const char *want)
{
	char out[256];
	ck_assert_uint_le(3 * n, sizeof(out));
	size_t m = unicode_utf8_sanitize(in, n, out);
	ck_assert_msg(m == strlen(want) && memcmp(out, want, m) == 0,
		      "sanitize gave %zu bytes, want %zu", m, strlen(want));
}

#define EXPECT(lit, want) expect(lit, sizeof(lit) - 1, want)

START_TEST(table_3_8)
{
	/* The standard's example: F1 80 80 is one maximal subpart (a 4-byte
	 * character missing its last byte), E1 80 another, C2 a third. */
	EXPECT("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64",
	       "a" R R R "b" R "c" R R "d");
}
END_TEST

START_TEST(never_lead_bytes)
{
	/* C0, C1 and F5..FF never start a character: one U+FFFD each, and the
	 * continuation bytes after them are stray, one each too. */
	EXPECT("\xC0\xAF", R R);
	EXPECT("\xC1\xBF", R R);
	EXPECT("\xF5\x80\x80\x80", R R R R);
	EXPECT("\xFF", R);
}
END_TEST

START_TEST(overlong_and_surrogates)
{
	/* E0 must be followed by A0..BF, ED by 80..9F, F0 by 90..BF, F4 by
	 * 80..8F: a second byte outside that range ends the subpart at the lead. */
	EXPECT("\xE0\x80\x80", R R R);     /* overlong U+0000 */
	EXPECT("\xED\xA0\x80", R R R);     /* surrogate U+D800 */
	EXPECT("\xF0\x80\x80\x80", R R R R);
	EXPECT("\xF4\x90\x80\x80", R R R R); /* U+110000 */
	EXPECT("\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF"); /* U+10FFFF is fine */
}
END_TEST

START_TEST(truncated_at_end_and_before_ascii)
{
	EXPECT("\xE2\x82", R);             /* cut by the end: one subpart */
	EXPECT("\xE2\x82" "A", R "A");     /* cut by ASCII: one, then the letter */
	EXPECT("\xF0\x9F\x98", R);
	EXPECT("x\xF0\x9F\x98\x80y", "x\xF0\x9F\x98\x80y");
}
END_TEST

START_TEST(empty_and_nul)
{
	char out[4];
	ck_assert_uint_eq(unicode_utf8_sanitize("", 0, out), 0);
	/* NUL is a well-formed character; it is kept. */
	ck_assert_uint_eq(unicode_utf8_sanitize("\0", 1, out), 1);
	ck_assert_int_eq(out[0], 0);
}
END_TEST

START_TEST(random_bytes)
{
	unsigned seed = 7;
	unsigned char in[32];
	char out[3 * sizeof(in)];
	for (int round = 0; round < 200000; round++) {
		size_t n = 1 + (unsigned)rand_r(&seed) % sizeof(in);
		for (size_t i = 0; i < n; i++)
			in[i] = utf8_ref_byte((unsigned)rand_r(&seed));
		size_t m = unicode_utf8_sanitize((const char *)in, n, out);
		ck_assert_uint_le(m, 3 * n);
		ck_assert_msg(utf8_ref_wellformed((const unsigned char *)out, m), "round %d: ill-formed output", round);
		if (utf8_ref_wellformed(in, n))
			ck_assert(m == n && memcmp(in, out, n) == 0);
		else
			ck_assert(memmem(out, m, R, 3) != NULL);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("utf8");
	TCase *tc = tcase_create("sanitize");
	tcase_add_test(tc, table_3_8);
	tcase_add_test(tc, never_lead_bytes);
	tcase_add_test(tc, overlong_and_surrogates);
	tcase_add_test(tc, truncated_at_end_and_before_ascii);
	tcase_add_test(tc, empty_and_nul);
	tcase_add_test(tc, random_bytes);
	suite_add_tcase(s, tc);
	return ck_run(s);
}
