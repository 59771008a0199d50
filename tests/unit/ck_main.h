/* ck_main.h - the end of every unit test's main(): run a suite in Check's
 * fork mode and turn its failures into the exit status meson reads. */
#ifndef SMK_TESTS_CK_MAIN_H
#define SMK_TESTS_CK_MAIN_H

#include <check.h>
#include <stdlib.h>

static inline int ck_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
