/* CUDA smoke test: where a GPU is usable, a kernel really runs and agrees
 * with the CPU; everywhere else the probe must say why there is none (and
 * the test reports a skip with that reason instead of passing silently). */
#include <check.h>

#include "../ck_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>

#include "compute/cuda/cuda_probe.h"
#include "smk_config.h"

START_TEST(probe_and_selftest)
{
	char why[256] = "";
	int n = cuda_probe(why, sizeof(why));
	if (n <= 0) {
		ck_assert_int_eq(n, -ENODEV);
		ck_assert_msg(why[0] != '\0', "the probe must give a reason");
		fprintf(stderr, "SKIP cuda: %s (built %s CUDA)\n", why, SMK_HAVE_CUDA ? "with" : "without");
		return;
	}
	enum { N = 1000 };
	static float a[N], b[N];
	double want = 0;
	for (int i = 0; i < N; i++) {
		a[i] = (float)(i % 7) - 3.0f;
		b[i] = (float)(i % 5) * 0.5f;
		want += (double)a[i] * b[i];
	}
	float got = 0;
	ck_assert_msg(cuda_selftest_dot(a, b, N, &got, why, sizeof(why)) == 0, "%s", why);
	ck_assert_msg(got == (float)want, "GPU dot %g, CPU %g", got, want);
	fprintf(stderr, "cuda: %d device(s), self-test dot ok\n", n);
}
END_TEST

int main(void)
{
	/* No usable GPU: exit 77, which meson reports as SKIP, with the reason. */
	char why[256] = "";
	int n = cuda_probe(why, sizeof(why));
	if (n <= 0) {
		if (n != -ENODEV || !why[0]) {
			printf("FAIL cuda: probe returned %d without a reason\n", n);
			return 1;
		}
		printf("SKIP cuda: %s\n", why);
		return 77;
	}
	Suite *s = suite_create("cuda");
	TCase *tc = tcase_create("probe");
	tcase_add_test(tc, probe_and_selftest);
	suite_add_tcase(s, tc);
	return ck_run(s);
}
