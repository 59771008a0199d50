/* weights_check.h - checks the weight-store tests share. */
#ifndef SMK_TESTS_WEIGHTS_CHECK_H
#define SMK_TESTS_WEIGHTS_CHECK_H

#include <check.h>
#include <unistd.h>

#include "weights/wstore.h"

/* After a run: no tier ever went over its budget, nothing is still pinned,
 * no load failed. */
static inline void check_budgets_held(const struct wstore_stats *st)
{
	for (int t = 0; t < WSTORE_N_TIERS; t++) {
		if (!st->tier[t].active)
			continue;
		ck_assert_uint_le(st->tier[t].peak, st->tier[t].budget);
		ck_assert_uint_le(st->tier[t].used, st->tier[t].budget);
	}
	ck_assert_int_eq(st->pinned, 0);
	ck_assert_uint_eq(st->load_errors, 0);
}

/* The prefetch loop runs on its own thread: on a busy machine the test's
 * acquires can outrun it through the whole plan, and "a prefetch was
 * issued" would depend on the scheduler.  After the first block, give the
 * loop time to act on the hint it got (bounded; no timing is asserted). */
static inline void wait_for_prefetch(struct wstore *ws)
{
	struct wstore_stats st;
	for (int tries = 0; tries < 20000; tries++) {
		wstore_get_stats(ws, &st);
		if (st.prefetch_issued > 0)
			return;
		usleep(1000);
	}
}

#endif
