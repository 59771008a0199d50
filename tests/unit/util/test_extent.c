/* extent tests: first fit, coalescing on both sides, alignment, exhaustion,
 * bad arguments, and a long random run of allocations and releases checked
 * step by step against a plain model of the region (one flag per alignment
 * unit, first fit by scanning), written here from the definition rather
 * than from the allocator's code.  Its users' own tests:
 * tests/unit/exec/test_kvpool.c, tests/unit/weights/test_weights.c. */
#include <check.h>

#include "ck_main.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/extent.h"

#define A 64u

static void make(struct extents *x, uint64_t size, int max_live)
{
	struct smk_err err = { 0 };
	ck_assert_msg(extent_init(x, size, A, max_live, &err) == 0, "%s", err.msg);
}

static uint64_t alloc_ok(struct extents *x, uint64_t len)
{
	uint64_t off = UINT64_MAX;
	ck_assert_int_eq(extent_alloc(x, len, &off), 0);
	ck_assert_int_eq(extent_check(x, NULL), 0);
	return off;
}

static void release_ok(struct extents *x, uint64_t off)
{
	ck_assert_int_eq(extent_release(x, off, NULL), 0);
	ck_assert_int_eq(extent_check(x, NULL), 0);
}

/* The free list as "off+len,off+len" in units of A. */
static const char *extents(const struct extents *x)
{
	static char buf[512];
	size_t n = 0;
	uint64_t off, len;
	buf[0] = 0;
	for (int i = 0; extent_free_at(x, i, &off, &len); i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%llu+%llu", i ? "," : "",
				      (unsigned long long)(off / A), (unsigned long long)(len / A));
	return buf;
}

START_TEST(init_rejects_bad_arguments)
{
	struct extents x;
	struct smk_err err = { 0 };
	ck_assert_int_eq(extent_init(&x, 10 * A, 0, 4, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "power of two") != NULL, "%s", err.msg);
	ck_assert_int_eq(extent_init(&x, 10 * A, 48, 4, &err), -EINVAL);
	ck_assert_int_eq(extent_init(&x, 10 * A, A, -1, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "-1 live extents") != NULL, "%s", err.msg);
	ck_assert_int_eq(extent_init(&x, 10 * A, A, EXTENT_MAX_LIVE + 1, NULL), -EINVAL);
	extent_deinit(&x); /* a failed init leaves nothing to release */
	extent_deinit(&x);
	/* the size is rounded down to whole units */
	make(&x, 10 * A + 63, 4);
	ck_assert_uint_eq(x.size, 10 * A);
	ck_assert_str_eq(extents(&x), "0+10");
	ck_assert_int_eq(extent_check(&x, NULL), 0);
	extent_deinit(&x);
	/* an empty region (less than one unit) is allowed and holds nothing */
	make(&x, A - 1, 4);
	uint64_t off = 7;
	ck_assert_int_eq(extent_n_free(&x), 0);
	ck_assert_int_eq(extent_alloc(&x, 1, &off), -ENOSPC);
	ck_assert_uint_eq(off, 7);
	ck_assert_int_eq(extent_check(&x, NULL), 0);
	extent_deinit(&x);
	/* no live extents allowed: every alloc is refused */
	make(&x, 4 * A, 0);
	ck_assert_int_eq(extent_alloc(&x, A, &off), -ENOBUFS);
	ck_assert(!extent_fits(&x, A));
	extent_deinit(&x);
}
END_TEST

START_TEST(alignment)
{
	ck_assert_uint_eq(extent_round(1, A), A);
	ck_assert_uint_eq(extent_round(A, A), A);
	ck_assert_uint_eq(extent_round(A + 1, A), 2 * A);
	ck_assert_uint_eq(extent_round(0, A), 0);
	ck_assert_uint_eq(extent_round(5, 1), 5);
	ck_assert_uint_eq(extent_round(UINT64_MAX - 3, A), UINT64_MAX);
	ck_assert_uint_eq(extent_round(UINT64_MAX - A + 1, A), UINT64_MAX - A + 1);
	struct extents x;
	make(&x, 64 * A, 8);
	const uint64_t sizes[] = { 1, A - 1, A, A + 1, 3 * A - 7, 5 };
	uint64_t prev_end = 0;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t off = alloc_ok(&x, sizes[i]);
		ck_assert_uint_eq(off % A, 0);
		ck_assert_uint_eq(off, prev_end); /* packed from the start */
		uint64_t len = 0;
		ck_assert_int_eq(extent_lookup(&x, off, &len), 0);
		ck_assert_uint_eq(len, extent_round(sizes[i], A)); /* recorded rounded */
		prev_end = off + len;
	}
	ck_assert_uint_eq(x.used, prev_end);
	ck_assert_uint_eq(extent_free_bytes(&x), 64 * A - prev_end);
	uint64_t off = 3;
	ck_assert_int_eq(extent_alloc(&x, 0, &off), -EINVAL);
	ck_assert_int_eq(extent_alloc(&x, UINT64_MAX, &off), -ENOSPC);
	ck_assert_uint_eq(off, 3);
	ck_assert(!extent_fits(&x, 0));
	ck_assert(!extent_fits(&x, UINT64_MAX));
	extent_deinit(&x);

	/* another alignment: every offset and length a multiple of it */
	struct smk_err err = { 0 };
	ck_assert_int_eq(extent_init(&x, 10000, 4096, 4, &err), 0);
	ck_assert_uint_eq(x.size, 8192);
	uint64_t a = 1, b = 1;
	ck_assert_int_eq(extent_alloc(&x, 1, &a), 0);
	ck_assert_int_eq(extent_alloc(&x, 4097, &b), -ENOSPC);
	ck_assert_int_eq(extent_alloc(&x, 4096, &b), 0);
	ck_assert_uint_eq(a, 0);
	ck_assert_uint_eq(b, 4096);
	ck_assert_int_eq(extent_check(&x, NULL), 0);
	extent_deinit(&x);
}
END_TEST

/* ---- scenarios: a script of steps, the free list checked after each ---- */

/* One step: allocate `n` bytes as handle h (want: the offset in units, or a
 * negative code), or release handle h (want: the code).  after: the free
 * list that must follow, as extents() prints it. */
struct step {
	char op;                /* 'a'lloc or 'r'elease */
	int h;
	uint64_t n;
	int want;
	const char *after;
};

static void run_script(const char *name, uint64_t units, int max_live, const struct step *s,
		       int n_steps)
{
	struct extents x;
	uint64_t at[16];
	make(&x, units * A, max_live);
	for (int i = 0; i < n_steps; i++) {
		int got;
		if (s[i].op == 'a') {
			uint64_t off = UINT64_MAX;
			got = extent_alloc(&x, s[i].n, &off);
			if (got == 0) {
				at[s[i].h] = off;
				got = (int)(off / A);
			}
		} else {
			got = extent_release(&x, at[s[i].h], NULL);
		}
		ck_assert_msg(got == s[i].want, "%s, step %d (%c h%d): got %d, want %d", name, i,
			      s[i].op, s[i].h, got, s[i].want);
		ck_assert_msg(strcmp(extents(&x), s[i].after) == 0, "%s, step %d: free list %s, want %s",
			      name, i, extents(&x), s[i].after);
		ck_assert_int_eq(extent_check(&x, NULL), 0);
	}
	extent_deinit(&x);
}

#define RUN(name, units, max_live, steps) \
	run_script(name, units, max_live, steps, (int)(sizeof(steps) / sizeof(steps[0])))

START_TEST(first_fit_takes_the_lowest_hole)
{
	static const struct step s[] = {
		{ 'a', 0, 2 * A, 0, "2+10" },
		{ 'a', 1, 3 * A, 2, "5+7" },
		{ 'a', 2, 1 * A, 5, "6+6" },
		{ 'a', 3, 4 * A, 6, "10+2" },
		{ 'r', 0, 0, 0, "0+2,10+2" },
		{ 'r', 2, 0, 0, "0+2,5+1,10+2" },
		/* one unit: the lowest hole that holds it, not the best fit (5+1) */
		{ 'a', 4, 1, 0, "1+1,5+1,10+2" },
		/* two units: 1+1 and 5+1 are too small, 10+2 holds them exactly */
		{ 'a', 5, 2 * A - 5, 10, "1+1,5+1" },
		{ 'a', 6, A, 1, "5+1" },
		{ 'a', 7, 2 * A, -ENOSPC, "5+1" },
		{ 'a', 7, A, 5, "" },
	};
	RUN("first fit", 12, 8, s);
}
END_TEST

START_TEST(release_coalesces_both_sides)
{
	static const struct step s[] = {
		{ 'a', 0, A, 0, "1+5" }, { 'a', 1, A, 1, "2+4" }, { 'a', 2, A, 2, "3+3" },
		{ 'a', 3, A, 3, "4+2" }, { 'a', 4, A, 4, "5+1" }, { 'a', 5, A, 5, "" },
		{ 'r', 2, 0, 0, "2+1" },          /* alone */
		{ 'r', 4, 0, 0, "2+1,4+1" },      /* alone */
		{ 'r', 3, 0, 0, "2+3" },          /* joins both */
		{ 'r', 1, 0, 0, "1+4" },          /* joins the next only */
		{ 'r', 5, 0, 0, "1+5" },          /* joins the previous only, at the end */
		{ 'r', 1, 0, -ENOENT, "1+5" },    /* twice: refused, nothing changes */
		{ 'r', 0, 0, 0, "0+6" },          /* joins the next, at the start: whole */
	};
	RUN("coalescing", 6, 6, s);
}
END_TEST

START_TEST(exhaustion_and_fragmentation)
{
	static const struct step s[] = {
		{ 'a', 0, A, 0, "1+7" },
		{ 'a', 1, A, 1, "2+6" },
		{ 'a', 2, A, 2, "3+5" },
		/* the table of live extents is full before the space is */
		{ 'a', 3, A, -ENOBUFS, "3+5" },
		{ 'a', 3, 0, -EINVAL, "3+5" },    /* a zero length is refused first */
		{ 'r', 1, 0, 0, "1+1,3+5" },
		/* 6 units free, but not in one piece; nor more than the region */
		{ 'a', 3, 6 * A, -ENOSPC, "1+1,3+5" },
		{ 'a', 3, 9 * A, -ENOSPC, "1+1,3+5" },
		{ 'a', 3, 5 * A, 3, "1+1" },
		{ 'r', 0, 0, 0, "0+2" },
		{ 'r', 2, 0, 0, "0+3" },
		{ 'r', 3, 0, 0, "0+8" },
		{ 'a', 0, 8 * A, 0, "" },
		{ 'a', 1, 1, -ENOSPC, "" },
	};
	RUN("exhaustion", 8, 3, s);
	/* fits says the same as alloc, and a failed alloc leaves *off alone */
	struct extents x;
	make(&x, 8 * A, 1);
	uint64_t off = 5;
	ck_assert(extent_fits(&x, 8 * A) && !extent_fits(&x, 8 * A + 1) && !extent_fits(&x, 0));
	ck_assert_int_eq(extent_alloc(&x, 8 * A + 1, &off), -ENOSPC);
	ck_assert_uint_eq(off, 5);
	ck_assert_uint_eq(alloc_ok(&x, 3 * A), 0);
	ck_assert(!extent_fits(&x, A)); /* max_live reached, though space is left */
	ck_assert_uint_eq(extent_free_bytes(&x), 5 * A);
	ck_assert_uint_eq(extent_largest_free(&x), 5 * A);
	extent_deinit(&x);
}
END_TEST

START_TEST(release_by_offset_only)
{
	/* A live extent is found by its start only: an offset inside it, or
	 * the start of a neighbour's free space, is not a live extent. */
	struct extents x;
	make(&x, 8 * A, 4);
	uint64_t a = alloc_ok(&x, 3 * A), b = alloc_ok(&x, 2 * A);
	ck_assert_int_eq(extent_release(&x, a + A, NULL), -ENOENT);
	ck_assert_int_eq(extent_release(&x, b + 2 * A, NULL), -ENOENT);
	ck_assert_int_eq(extent_release(&x, UINT64_MAX, NULL), -ENOENT);
	ck_assert_int_eq(extent_n_live(&x), 2);
	ck_assert_str_eq(extents(&x), "5+3");
	release_ok(&x, b);
	ck_assert_int_eq(extent_release(&x, b, NULL), -ENOENT); /* double release */
	release_ok(&x, a);
	ck_assert_str_eq(extents(&x), "0+8");
	extent_deinit(&x);
}
END_TEST

START_TEST(check_finds_corruption)
{
	/* extent_check is what the check modes rely on: it must notice each
	 * kind of damage (made here by hand, as a bug would). */
	struct extents x;
	make(&x, 8 * A, 4);
	uint64_t a = alloc_ok(&x, 2 * A);
	alloc_ok(&x, 2 * A);
	release_ok(&x, a);
	ck_assert_str_eq(extents(&x), "0+2,4+4");
	struct smk_err err = { 0 };
	x.used += A;
	ck_assert_int_eq(extent_check(&x, &err), -EFAULT);
	ck_assert_msg(strstr(err.msg, "extent allocator") != NULL, "%s", err.msg);
	x.used -= A;
	x.free[0].len += A; /* overlaps the live extent */
	ck_assert_int_eq(extent_check(&x, NULL), -EFAULT);
	x.free[0].len -= 2 * A; /* leaves a hole */
	ck_assert_int_eq(extent_check(&x, NULL), -EFAULT);
	x.free[0].len += A;
	x.live[0].len -= A; /* a live extent too short leaves a hole */
	ck_assert_int_eq(extent_check(&x, NULL), -EFAULT);
	x.live[0].len += A;
	/* the live extent forgotten and its space given to the next free
	 * one: the region is tiled, but two free extents meet */
	x.n_live = 0;
	x.used = 0;
	x.free[1] = (struct extent){ 2 * A, 6 * A };
	ck_assert_int_eq(extent_check(&x, &err), -EFAULT);
	ck_assert_msg(strstr(err.msg, "meet") != NULL, "%s", err.msg);
	x.n_live = 1;
	x.used = 2 * A;
	x.free[1] = (struct extent){ 4 * A, 4 * A };
	x.free[1].len = 3 * A + 1; /* unaligned, and short of the end */
	ck_assert_int_eq(extent_check(&x, NULL), -EFAULT);
	x.free[1].len = 4 * A;
	ck_assert_int_eq(extent_check(&x, NULL), 0);
	extent_deinit(&x);
}
END_TEST

/* ---- random run against a reference model ----
 *
 * The model is the definition itself: owner[u] names the handle holding
 * alignment unit u (0: free).  An allocation of k units goes where the
 * first run of k free units ends earliest; the free list must be exactly
 * the maximal runs of free units; a release frees the units its handle
 * holds.  Nothing of the allocator's structure is reused. */

enum { NU = 83, NH = 10 };

static uint32_t xs = 1;
static uint32_t next_rand(void)
{
	xs ^= xs << 13;
	xs ^= xs >> 17;
	xs ^= xs << 5;
	return xs;
}

/* The first unit of the lowest run of k free units, or -1. */
static int ref_first_fit(const int *owner, int k)
{
	int run = 0;
	for (int u = 0; u < NU; u++) {
		run = owner[u] ? 0 : run + 1;
		if (run == k)
			return u - k + 1;
	}
	return -1;
}

/* Every extent on the free list is a maximal run of free units, and
 * together they hold every free unit. */
static void ref_compare(const struct extents *x, const int *owner, const char *where)
{
	uint64_t off, len, listed = 0, largest = 0;
	int n = 0;
	for (int i = 0; extent_free_at(x, i, &off, &len); i++, n++) {
		int lo = (int)(off / A), hi = (int)((off + len) / A);
		ck_assert_msg(off % A == 0 && len % A == 0 && len > 0 && hi <= NU,
			      "%s: bad extent %d", where, i);
		/* (one assertion per extent: Check records each one, and this
		 * runs 75000 times) */
		int held = lo;
		while (held < hi && owner[held] == 0)
			held++;
		ck_assert_msg(held == hi, "%s: unit %d listed free, held by h%d", where, held,
			      held < hi ? owner[held] - 1 : -1);
		ck_assert_msg(lo == 0 || owner[lo - 1], "%s: extent %d not maximal below", where, i);
		ck_assert_msg(hi == NU || owner[hi], "%s: extent %d not maximal above", where, i);
		listed += len / A;
		largest = len > largest ? len : largest;
	}
	uint64_t free_units = 0;
	for (int u = 0; u < NU; u++)
		free_units += owner[u] == 0;
	ck_assert_msg(listed == free_units, "%s: %llu units listed free, model %llu", where,
		      (unsigned long long)listed, (unsigned long long)free_units);
	ck_assert_int_eq(extent_n_free(x), n);
	ck_assert_uint_eq(extent_free_bytes(x), free_units * A);
	ck_assert_uint_eq(extent_largest_free(x), largest);
	ck_assert_int_eq(extent_check(x, NULL), 0);
}

START_TEST(random_against_model)
{
	int outcomes[4] = { 0 }; /* placed, -ENOSPC, -ENOBUFS, released */
	for (uint32_t seed = 1; seed <= 25; seed++) {
		xs = seed * 2654435761u;
		struct extents x;
		make(&x, (uint64_t)NU * A, NH - 2);
		int owner[NU] = { 0 };
		uint64_t where[NH] = { 0 }, units[NH] = { 0 }; /* units 0: handle unused */
		int n_held = 0;
		for (int step = 0; step < 3000; step++) {
			char at[64];
			snprintf(at, sizeof(at), "seed %u step %d", seed, step);
			int h = (int)(next_rand() % NH);
			if (units[h]) {
				uint64_t len = 0;
				ck_assert_int_eq(extent_release(&x, where[h], &len), 0);
				ck_assert_uint_eq(len, units[h] * A);
				for (uint64_t u = where[h] / A; u < where[h] / A + units[h]; u++)
					owner[u] = 0;
				units[h] = 0;
				n_held--;
				outcomes[3]++;
			} else {
				/* bytes, not units: the allocator rounds them up */
				uint64_t bytes = next_rand() % 4 ? 1 + next_rand() % (10 * A)
								 : 1 + next_rand() % (NU * A);
				int k = (int)((bytes + A - 1) / A);
				int fit = ref_first_fit(owner, k);
				int want = n_held == NH - 2 ? -ENOBUFS : fit < 0 ? -ENOSPC : 0;
				uint64_t off = UINT64_MAX;
				ck_assert_msg(extent_fits(&x, bytes) == (want == 0), "%s: fits", at);
				int rc = extent_alloc(&x, bytes, &off);
				ck_assert_msg(rc == want, "%s: %d units: rc %d, model %d", at, k, rc, want);
				if (rc == 0) {
					ck_assert_msg(off == (uint64_t)fit * A, "%s: %d units at %llu, model %d",
						      at, k, (unsigned long long)(off / A), fit);
					for (int u = fit; u < fit + k; u++)
						owner[u] = h + 1;
					where[h] = off;
					units[h] = (uint64_t)k;
					n_held++;
				}
				outcomes[rc == 0 ? 0 : rc == -ENOSPC ? 1 : 2]++;
			}
			ck_assert_int_eq(extent_n_live(&x), n_held);
			ref_compare(&x, owner, at);
		}
		for (int h = 0; h < NH; h++)
			if (units[h])
				release_ok(&x, where[h]);
		ck_assert_str_eq(extents(&x), "0+83");
		extent_deinit(&x);
	}
	/* the run reached every outcome often enough to mean something */
	ck_assert(outcomes[0] > 1000 && outcomes[1] > 50 && outcomes[2] > 50 && outcomes[3] > 1000);
}
END_TEST


int main(void)
{
	Suite *s = suite_create("extent");
	TCase *tc = tcase_create("extent");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, init_rejects_bad_arguments);
	tcase_add_test(tc, alignment);
	tcase_add_test(tc, first_fit_takes_the_lowest_hole);
	tcase_add_test(tc, release_coalesces_both_sides);
	tcase_add_test(tc, release_by_offset_only);
	tcase_add_test(tc, exhaustion_and_fragmentation);
	tcase_add_test(tc, check_finds_corruption);
	tcase_add_test(tc, random_against_model);
	suite_add_tcase(s, tc);
	return ck_run(s);
}
