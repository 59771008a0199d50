/* kvpool tests: first fit, coalescing, alignment, exhaustion, and a long
 * random run of allocations and releases checked step by step against a
 * plain model of the region (one flag per KVPOOL_ALIGN unit, first fit by
 * scanning), written here from the definition rather than from the pool's
 * code.  The pool inside the daemon's worker: tests/unit/engine/test_worker.c. */
#include <check.h>

#include "ck_main.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/kvpool.h"

#define A KVPOOL_ALIGN

static struct kvpool *make(uint64_t size, int max_live)
{
	struct kvpool *p = NULL;
	struct smk_err err = { 0 };
	ck_assert_msg(kvpool_new(&p, size, max_live, &err) == 0, "%s", err.msg);
	return p;
}

static uint64_t alloc_ok(struct kvpool *p, uint64_t bytes)
{
	uint64_t off = UINT64_MAX;
	ck_assert_int_eq(kvpool_alloc(p, bytes, &off), 0);
	return off;
}

/* The free list as "off+len,off+len" in units of A. */
static const char *extents(const struct kvpool *p)
{
	static char buf[512];
	size_t n = 0;
	uint64_t off, len;
	buf[0] = 0;
	for (int i = 0; kvpool_extent(p, i, &off, &len); i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%llu+%llu", i ? "," : "",
				      (unsigned long long)(off / A), (unsigned long long)(len / A));
	return buf;
}

START_TEST(new_rejects_bad_sizes)
{
	struct kvpool *p = NULL;
	struct smk_err err = { 0 };
	ck_assert_int_eq(kvpool_new(&p, A - 1, 4, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "kv pool") != NULL, "%s", err.msg);
	ck_assert_int_eq(kvpool_new(&p, 10 * A, 0, &err), -EINVAL);
	/* the size is rounded down to whole units */
	p = make(10 * A + 100, 4);
	ck_assert_uint_eq(kvpool_size(p), 10 * A);
	ck_assert_str_eq(extents(p), "0+10");
	kvpool_free(p);
	kvpool_free(NULL);
}
END_TEST

START_TEST(alignment)
{
	ck_assert_uint_eq(kvpool_round(1), A);
	ck_assert_uint_eq(kvpool_round(A), A);
	ck_assert_uint_eq(kvpool_round(A + 1), 2 * A);
	ck_assert_uint_eq(kvpool_round(UINT64_MAX - 3), UINT64_MAX);
	struct kvpool *p = make(64 * A, 8);
	const uint64_t sizes[] = { 1, A - 1, A, A + 1, 3 * A - 7, 5 };
	uint64_t prev_end = 0;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t off = alloc_ok(p, sizes[i]);
		ck_assert_uint_eq(off % A, 0);
		ck_assert_uint_eq(off, prev_end); /* packed from the start */
		prev_end = off + kvpool_round(sizes[i]);
	}
	ck_assert_uint_eq(kvpool_free_bytes(p), 64 * A - prev_end);
	uint64_t off;
	ck_assert_int_eq(kvpool_alloc(p, 0, &off), -EINVAL);
	ck_assert_int_eq(kvpool_alloc(p, UINT64_MAX, &off), -ENOSPC);
	ck_assert(!kvpool_fits(p, 0));
	kvpool_free(p);
}
END_TEST

START_TEST(first_fit_takes_the_lowest_hole)
{
	struct kvpool *p = make(16 * A, 8);
	uint64_t a = alloc_ok(p, 2 * A), b = alloc_ok(p, 4 * A), c = alloc_ok(p, 1 * A);
	uint64_t d = alloc_ok(p, 3 * A);
	ck_assert_uint_eq(a, 0);
	ck_assert_uint_eq(b, 2 * A);
	ck_assert_uint_eq(c, 6 * A);
	ck_assert_uint_eq(d, 7 * A);
	ck_assert_int_eq(kvpool_release(p, a), 0);
	ck_assert_int_eq(kvpool_release(p, c), 0);
	ck_assert_str_eq(extents(p), "0+2,6+1,10+6");
	/* 1 unit: the lowest hole that holds it is the first (0+2) */
	ck_assert_uint_eq(alloc_ok(p, A), 0);
	/* 2 units: 1+1 and 6+1 are too small, 10+6 holds it */
	ck_assert_uint_eq(alloc_ok(p, 2 * A), 10 * A);
	/* 1 unit again: 1+1 (the rest of the first hole) */
	ck_assert_uint_eq(alloc_ok(p, A), 1 * A);
	ck_assert_str_eq(extents(p), "6+1,12+4");
	ck_assert_uint_eq(kvpool_largest_free(p), 4 * A);
	kvpool_free(p);
}
END_TEST

START_TEST(release_coalesces_both_sides)
{
	struct kvpool *p = make(8 * A, 8);
	uint64_t o[8];
	for (int i = 0; i < 8; i++)
		o[i] = alloc_ok(p, A);
	ck_assert_int_eq(kvpool_n_extents(p), 0);
	ck_assert_int_eq(kvpool_release(p, o[1]), 0);   /* alone */
	ck_assert_int_eq(kvpool_release(p, o[3]), 0);   /* alone */
	ck_assert_str_eq(extents(p), "1+1,3+1");
	ck_assert_int_eq(kvpool_release(p, o[2]), 0);   /* joins both */
	ck_assert_str_eq(extents(p), "1+3");
	ck_assert_int_eq(kvpool_release(p, o[0]), 0);   /* joins the next */
	ck_assert_str_eq(extents(p), "0+4");
	ck_assert_int_eq(kvpool_release(p, o[7]), 0);   /* at the end, alone */
	ck_assert_int_eq(kvpool_release(p, o[4]), 0);   /* joins the previous */
	ck_assert_str_eq(extents(p), "0+5,7+1");
	ck_assert_int_eq(kvpool_release(p, o[6]), 0);
	ck_assert_int_eq(kvpool_release(p, o[5]), 0);
	ck_assert_str_eq(extents(p), "0+8");    /* whole again */
	ck_assert_int_eq(kvpool_n_live(p), 0);
	/* releasing what is not live changes nothing */
	ck_assert_int_eq(kvpool_release(p, o[5]), -ENOENT);
	ck_assert_int_eq(kvpool_release(p, 3), -ENOENT);
	ck_assert_str_eq(extents(p), "0+8");
	kvpool_free(p);
}
END_TEST

START_TEST(exhaustion_and_fragmentation)
{
	struct kvpool *p = make(8 * A, 3);
	uint64_t off;
	/* the table of live allocations is full before the space is */
	uint64_t a = alloc_ok(p, A), b = alloc_ok(p, A), c = alloc_ok(p, A);
	ck_assert(!kvpool_fits(p, A));
	ck_assert_int_eq(kvpool_alloc(p, A, &off), -ENOBUFS);
	ck_assert_int_eq(kvpool_release(p, b), 0);
	/* larger than the whole pool, or than any extent */
	ck_assert_int_eq(kvpool_alloc(p, 9 * A, &off), -ENOSPC);
	ck_assert_int_eq(kvpool_alloc(p, 6 * A, &off), -ENOSPC);
	ck_assert(!kvpool_fits(p, 6 * A));
	/* fragmentation: 6 units are free (1 + 5) but not 6 in one piece */
	ck_assert_uint_eq(kvpool_free_bytes(p), 6 * A);
	ck_assert_uint_eq(kvpool_largest_free(p), 5 * A);
	ck_assert(kvpool_fits(p, 5 * A));
	ck_assert_str_eq(extents(p), "1+1,3+5");
	/* a failed alloc leaves the pool as it was */
	ck_assert_int_eq(kvpool_alloc(p, 6 * A, &off), -ENOSPC);
	ck_assert_str_eq(extents(p), "1+1,3+5");
	ck_assert_int_eq(kvpool_release(p, a), 0);
	ck_assert_int_eq(kvpool_release(p, c), 0);
	ck_assert(kvpool_fits(p, 8 * A));
	ck_assert_uint_eq(alloc_ok(p, 8 * A), 0);
	ck_assert_int_eq(kvpool_n_extents(p), 0);
	ck_assert_int_eq(kvpool_alloc(p, 1, &off), -ENOSPC);
	kvpool_free(p);
}
END_TEST

/* ---- randomised run against a model ---- */

enum { UNITS = 97, MAX_LIVE = 12 };

static unsigned rng = 1;
static unsigned rnd(unsigned n)
{
	rng = rng * 1103515245u + 12345u;
	return (rng >> 8) % n;
}

/* First fit in the model: the lowest unit that starts `need` free units. */
static int model_fit(const bool *used, int need)
{
	for (int s = 0; s + need <= UNITS; s++) {
		int k = 0;
		while (k < need && !used[s + k])
			k++;
		if (k == need)
			return s;
		s += k; /* the next candidate starts after the used unit */
	}
	return -1;
}

/* The pool's free list equals the model's maximal free runs, in order. */
static void check_extents(const struct kvpool *p, const bool *used, int step)
{
	int i = 0;
	uint64_t off, len, free_units = 0;
	for (int u = 0; u < UNITS;) {
		if (used[u]) {
			u++;
			continue;
		}
		int e = u;
		while (e < UNITS && !used[e])
			e++;
		ck_assert_msg(kvpool_extent(p, i, &off, &len), "step %d: extent %d missing", step, i);
		ck_assert_msg(off == (uint64_t)u * A && len == (uint64_t)(e - u) * A,
			      "step %d: extent %d is %llu+%llu, model %d+%d", step, i,
			      (unsigned long long)(off / A), (unsigned long long)(len / A), u, e - u);
		free_units += (uint64_t)(e - u);
		i++;
		u = e;
	}
	ck_assert_msg(!kvpool_extent(p, i, &off, &len), "step %d: extra extent %d", step, i);
	ck_assert_int_eq(kvpool_n_extents(p), i);
	ck_assert_uint_eq(kvpool_free_bytes(p), free_units * A);
}

START_TEST(random_against_model)
{
	for (unsigned seed = 1; seed <= 20; seed++) {
		rng = seed;
		struct kvpool *p = make((uint64_t)UNITS * A, MAX_LIVE);
		bool used[UNITS] = { false };
		struct { uint64_t off; int units; } live[MAX_LIVE];
		int n_live = 0, n_alloc = 0, n_nospc = 0, n_nobufs = 0;
		for (int step = 0; step < 4000; step++) {
			if (n_live > 0 && rnd(100) < 45) {
				int k = (int)rnd((unsigned)n_live);
				ck_assert_int_eq(kvpool_release(p, live[k].off), 0);
				for (int u = 0; u < live[k].units; u++)
					used[live[k].off / A + (uint64_t)u] = false;
				live[k] = live[--n_live];
			} else {
				/* mostly small, sometimes most of the pool */
				uint64_t bytes = rnd(10) ? 1 + rnd(12 * A) : 1 + rnd(60 * A);
				int need = (int)((bytes + A - 1) / A);
				int want = n_live < MAX_LIVE ? model_fit(used, need) : -1;
				uint64_t off = 0;
				bool fits = kvpool_fits(p, bytes);
				int rc = kvpool_alloc(p, bytes, &off);
				ck_assert_int_eq(fits, rc == 0);
				if (n_live == MAX_LIVE) {
					ck_assert_int_eq(rc, -ENOBUFS);
					n_nobufs++;
				} else if (want < 0) {
					ck_assert_msg(rc == -ENOSPC, "seed %u step %d: %d units placed, model has no room",
						      seed, step, need);
					n_nospc++;
				} else {
					ck_assert_msg(rc == 0 && off == (uint64_t)want * A,
						      "seed %u step %d: %d units at %llu, model %d (rc %d)", seed,
						      step, need, (unsigned long long)(off / A), want, rc);
					for (int u = 0; u < need; u++) {
						ck_assert(!used[want + u]);
						used[want + u] = true;
					}
					live[n_live].off = off;
					live[n_live++].units = need;
					n_alloc++;
				}
			}
			ck_assert_int_eq(kvpool_n_live(p), n_live);
			check_extents(p, used, step);
		}
		/* every kind of outcome happened */
		ck_assert(n_alloc > 100 && n_nospc > 10 && n_nobufs > 0);
		while (n_live)
			ck_assert_int_eq(kvpool_release(p, live[--n_live].off), 0);
		ck_assert_str_eq(extents(p), "0+97");
		kvpool_free(p);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kvpool");
	TCase *tc = tcase_create("pool");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, new_rejects_bad_sizes);
	tcase_add_test(tc, alignment);
	tcase_add_test(tc, first_fit_takes_the_lowest_hole);
	tcase_add_test(tc, release_coalesces_both_sides);
	tcase_add_test(tc, exhaustion_and_fragmentation);
	tcase_add_test(tc, random_against_model);
	suite_add_tcase(s, tc);
	return ck_run(s);
}
