/* hashtab tests: FNV-1a 64 against the published test vectors (Fowler, Noll
 * and Vo's reference code, test_fnv.c), and the index's contract (hashtab.h)
 * on what makes open addressing go wrong: every key on one home slot, a run
 * of slots that wraps past the end, a full index, missing keys, repeats. */
#include <check.h>

#include "ck_main.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/hashtab.h"

START_TEST(fnv1a64_vectors)
{
	ck_assert_uint_eq(smk_fnv1a64("", 0), 0xcbf29ce484222325ull);
	ck_assert_uint_eq(smk_fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
	ck_assert_uint_eq(smk_fnv1a64("foobar", 6), 0x85944171f73967e8ull);
	ck_assert_uint_eq(smk_fnv1a64_str(""), 0xcbf29ce484222325ull);
	ck_assert_uint_eq(smk_fnv1a64_str("a"), 0xaf63dc4c8601ec8cull);
	ck_assert_uint_eq(smk_fnv1a64_str("foobar"), 0x85944171f73967e8ull);
	/* Bytes, not characters: a NUL and bytes >= 0x80 are hashed too (a
	 * signed char sign-extended into the XOR would give another value). */
	ck_assert_uint_eq(smk_fnv1a64("\xff\x00", 2), 0x0a99a607b6f60beaull);
	ck_assert_uint_ne(smk_fnv1a64("a\0", 2), smk_fnv1a64("a", 1));
}
END_TEST

START_TEST(init_sizes)
{
	struct smk_hindex x;
	static const struct { uint64_t max; uint32_t slots; } want[] = {
		{ 0, 16 }, { 1, 16 }, { 8, 16 }, { 9, 32 }, { 16, 32 }, { 17, 64 }, { 1000, 2048 },
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		ck_assert_int_eq(smk_hindex_init(&x, want[i].max), 0);
		ck_assert_uint_eq(x.mask + 1, want[i].slots);
		ck_assert_uint_eq(x.max, want[i].max);
		ck_assert_uint_eq(x.n, 0);
		for (uint32_t s = 0; s <= x.mask; s++)
			ck_assert_int_eq(x.slot[s], -1);
		smk_hindex_deinit(&x);
		ck_assert_ptr_null(x.slot);
		smk_hindex_deinit(&x);  /* twice is harmless */
	}
	memset(&x, 0x5a, sizeof(x));
	ck_assert_int_eq(smk_hindex_init(&x, (uint64_t)SMK_HINDEX_MAX + 1), -E2BIG);
	ck_assert_ptr_null(x.slot);
	ck_assert_uint_eq(x.mask, 0);
	ck_assert_uint_eq(x.max, 0);
}
END_TEST

/* Keys are C strings in names[]; entries are their indexes.  The hash can
 * be forced to one value to put every key on the same home slot. */
struct keys {
	const char *const *names;
	int32_t n_put;          /* eq may only see entries below this */
	int calls;
};

struct lookup {
	struct keys *k;
	const char *name;
};

static bool name_eq(const void *key, int32_t e)
{
	const struct lookup *l = key;
	ck_assert_int_ge(e, 0);
	ck_assert_int_lt(e, l->k->n_put);
	l->k->calls++;
	return !strcmp(l->k->names[e], l->name);
}

static int32_t put(struct smk_hindex *x, struct keys *k, uint64_t h, int32_t e)
{
	struct lookup l = { k, k->names[e] };
	int32_t r = smk_hindex_put(x, h, name_eq, &l, e);
	if (r == e)
		k->n_put = e + 1;
	return r;
}

static int32_t find(const struct smk_hindex *x, struct keys *k, uint64_t h, const char *name)
{
	struct lookup l = { k, name };
	return smk_hindex_find(x, h, name_eq, &l);
}

static const char *const words[] = { "alpha", "beta", "gamma", "delta", "epsilon",
				     "zeta", "eta", "theta" };
#define N_WORDS 8

START_TEST(put_find_missing)
{
	struct smk_hindex x;
	struct keys k = { words, 0, 0 };
	ck_assert_int_eq(smk_hindex_init(&x, N_WORDS), 0);
	for (int32_t i = 0; i < N_WORDS; i++)
		ck_assert_int_eq(put(&x, &k, smk_fnv1a64_str(words[i]), i), i);
	ck_assert_uint_eq(x.n, N_WORDS);
	for (int32_t i = 0; i < N_WORDS; i++)
		ck_assert_int_eq(find(&x, &k, smk_fnv1a64_str(words[i]), words[i]), i);
	ck_assert_int_eq(find(&x, &k, smk_fnv1a64_str("iota"), "iota"), -1);
	ck_assert_int_eq(find(&x, &k, smk_fnv1a64_str(""), ""), -1);
	ck_assert_int_eq(find(&x, &k, smk_fnv1a64_str("alph"), "alph"), -1);
	/* Exactly N_WORDS slots are taken, by the entries 0..7 once each. */
	int seen[N_WORDS] = { 0 }, taken = 0;
	for (uint32_t s = 0; s <= x.mask; s++)
		if (x.slot[s] >= 0)
			seen[x.slot[s]]++, taken++;
	ck_assert_int_eq(taken, N_WORDS);
	for (int i = 0; i < N_WORDS; i++)
		ck_assert_int_eq(seen[i], 1);
	smk_hindex_deinit(&x);
}
END_TEST

START_TEST(repeat_keeps_first)
{
	static const char *const names[] = { "x", "y", "x", "y", "x" };
	struct smk_hindex x;
	struct keys k = { names, 0, 0 };
	ck_assert_int_eq(smk_hindex_init(&x, 5), 0);
	ck_assert_int_eq(put(&x, &k, smk_fnv1a64_str("x"), 0), 0);
	ck_assert_int_eq(put(&x, &k, smk_fnv1a64_str("y"), 1), 1);
	ck_assert_int_eq(put(&x, &k, smk_fnv1a64_str("x"), 2), 0);
	ck_assert_int_eq(put(&x, &k, smk_fnv1a64_str("y"), 3), 1);
	ck_assert_int_eq(put(&x, &k, smk_fnv1a64_str("x"), 4), 0);
	ck_assert_uint_eq(x.n, 2);  /* refused repeats take no room */
	ck_assert_int_eq(find(&x, &k, smk_fnv1a64_str("x"), "x"), 0);
	ck_assert_int_eq(find(&x, &k, smk_fnv1a64_str("y"), "y"), 1);
	smk_hindex_deinit(&x);
}
END_TEST

START_TEST(all_on_one_home)
{
	/* Every key hashes alike: lookups must walk the run and compare. */
	struct smk_hindex x;
	struct keys k = { words, 0, 0 };
	ck_assert_int_eq(smk_hindex_init(&x, N_WORDS), 0);
	for (int32_t i = 0; i < N_WORDS; i++)
		ck_assert_int_eq(put(&x, &k, 42, i), i);
	uint32_t home = smk_hindex_home(&x, 42);
	for (int32_t i = 0; i < N_WORDS; i++)
		ck_assert_int_eq(x.slot[(home + (uint32_t)i) & x.mask], i);
	for (int32_t i = 0; i < N_WORDS; i++) {
		k.calls = 0;
		ck_assert_int_eq(find(&x, &k, 42, words[i]), i);
		ck_assert_int_eq(k.calls, i + 1);       /* one compare per entry passed */
	}
	k.calls = 0;
	ck_assert_int_eq(find(&x, &k, 42, "iota"), -1);
	ck_assert_int_eq(k.calls, N_WORDS);             /* stops at the empty slot */
	smk_hindex_deinit(&x);
}
END_TEST

START_TEST(run_wraps_past_end)
{
	struct smk_hindex x;
	struct keys k = { words, 0, 0 };
	ck_assert_int_eq(smk_hindex_init(&x, N_WORDS), 0);
	/* A hash whose home is the last slot. */
	uint64_t h = 0;
	while (smk_hindex_home(&x, h) != x.mask)
		h++;
	for (int32_t i = 0; i < 3; i++)
		ck_assert_int_eq(put(&x, &k, h, i), i);
	ck_assert_int_eq(x.slot[x.mask], 0);
	ck_assert_int_eq(x.slot[0], 1);
	ck_assert_int_eq(x.slot[1], 2);
	for (int32_t i = 0; i < 3; i++)
		ck_assert_int_eq(find(&x, &k, h, words[i]), i);
	ck_assert_int_eq(find(&x, &k, h, "iota"), -1);
	smk_hindex_deinit(&x);
}
END_TEST

START_TEST(full_index)
{
	/* Sized for 3, a fourth key is refused and changes nothing; lookups
	 * still end (half the slots stay empty), repeats still answer. */
	struct smk_hindex x;
	struct keys k = { words, 0, 0 };
	ck_assert_int_eq(smk_hindex_init(&x, 3), 0);
	for (int32_t i = 0; i < 3; i++)
		ck_assert_int_eq(put(&x, &k, 7, i), i);
	int32_t before[16];
	ck_assert_uint_eq(x.mask + 1, 16);
	memcpy(before, x.slot, sizeof(before));
	ck_assert_int_eq(put(&x, &k, 7, 3), -1);
	ck_assert_int_eq(put(&x, &k, smk_fnv1a64_str(words[3]), 3), -1);
	ck_assert_uint_eq(x.n, 3);
	ck_assert_int_eq(memcmp(before, x.slot, sizeof(before)), 0);
	ck_assert_int_eq(put(&x, &k, 7, 2), 2);    /* a repeat, not a new key */
	ck_assert_int_eq(find(&x, &k, 7, words[3]), -1);
	ck_assert_int_eq(find(&x, &k, 7, words[1]), 1);
	smk_hindex_deinit(&x);

	/* Sized for 0: every put is refused. */
	ck_assert_int_eq(smk_hindex_init(&x, 0), 0);
	k.n_put = 0;
	ck_assert_int_eq(put(&x, &k, 1, 0), -1);
	ck_assert_int_eq(find(&x, &k, 1, words[0]), -1);
	smk_hindex_deinit(&x);
}
END_TEST

START_TEST(zeroed_is_empty)
{
	struct smk_hindex x = { 0 };
	struct keys k = { words, 0, 0 };
	ck_assert_int_eq(find(&x, &k, smk_fnv1a64_str("alpha"), "alpha"), -1);
	ck_assert_int_eq(k.calls, 0);
}
END_TEST

START_TEST(many_keys)
{
	/* 20000 distinct keys (65536 slots: the first power of two >= 40000):
	 * all found, near misses not. */
	enum { N = 20000 };
	char (*buf)[16] = malloc(sizeof(*buf) * N);
	const char **names = malloc(sizeof(*names) * N);
	ck_assert_ptr_nonnull(buf);
	ck_assert_ptr_nonnull(names);
	for (int i = 0; i < N; i++) {
		snprintf(buf[i], sizeof(buf[i]), "k%d", i);
		names[i] = buf[i];
	}
	struct smk_hindex x;
	struct keys k = { names, 0, 0 };
	ck_assert_int_eq(smk_hindex_init(&x, N), 0);
	ck_assert_uint_eq(x.mask + 1, 65536);
	for (int32_t i = 0; i < N; i++)
		ck_assert_int_eq(put(&x, &k, smk_fnv1a64_str(names[i]), i), i);
	k.calls = 0;
	for (int32_t i = 0; i < N; i++)
		ck_assert_int_eq(find(&x, &k, smk_fnv1a64_str(names[i]), names[i]), i);
	/* Linear probing at load 0.3 averages about 1.2 compares per hit; a
	 * mix that left the low bits poor would cluster far worse. */
	ck_assert_int_lt(k.calls, 2 * N);
	char miss[16];
	for (int i = N; i < 2 * N; i++) {
		snprintf(miss, sizeof(miss), "k%d", i);
		ck_assert_int_eq(find(&x, &k, smk_fnv1a64_str(miss), miss), -1);
	}
	smk_hindex_deinit(&x);
	free(names);
	free(buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hashtab");
	TCase *tc = tcase_create("hashtab");
	tcase_add_test(tc, fnv1a64_vectors);
	tcase_add_test(tc, init_sizes);
	tcase_add_test(tc, put_find_missing);
	tcase_add_test(tc, repeat_keeps_first);
	tcase_add_test(tc, all_on_one_home);
	tcase_add_test(tc, run_wraps_past_end);
	tcase_add_test(tc, full_index);
	tcase_add_test(tc, zeroed_is_empty);
	tcase_add_test(tc, many_keys);
	suite_add_tcase(s, tc);
	return ck_run(s);
}
