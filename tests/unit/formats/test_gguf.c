/* test_gguf.c - GGUF reader tests.
 *
 * References are independent of gguf.c: tests/fixtures/gguf/ is written by
 * scripts/make-bad-gguf.py, which checks its own writer with the `gguf` PyPI
 * package's GGUFReader and describes the real model as GGUFReader sees it.
 *   valid      every value type of valid.gguf read back and compared with what
 *              the generator wrote (valid.json), through every getter,
 *              including the range/type refusals each getter must make.
 *   corpus     one file per rejection class: -EINVAL and a message naming the
 *              field at fault; plus variants that must open.
 *   model      the default model against model.json (skipped if absent).
 *   truncate   the real model cut at ~5000 points (every byte of the first
 *              4 KiB, each key/tensor-info boundary, spread over metadata and
 *              data): each must fail cleanly.  Cuts are made by shrinking one
 *              sparse copy, so no cut costs a copy of the file.
 *   fuzz       byte mutations of valid.gguf: open must not crash or hang, and
 *              whatever opens must be fully walkable.
 */
#include <check.h>

#include "ck_main.h"
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "quant/qtype.h"

/* ------------------------------------------------------------------------ */
/* Fixture helpers                                                          */

static json_t *g_corpus;     /* corpus.json, loaded in main() */

static const char *fixtures_dir(void)
{
	const char *d = getenv("SMOKE_FIXTURES");
	return d && *d ? d : "tests/fixtures";
}

/* Caller frees. */
static char *fx_path(const char *rel)
{
	char *p;
	ck_assert_int_ge(asprintf(&p, "%s/gguf/%s", fixtures_dir(), rel), 0);
	return p;
}

static json_t *fx_json(const char *rel)
{
	char *p = fx_path(rel);
	json_error_t je;
	json_t *j = json_load_file(p, 0, &je);
	ck_assert_msg(j, "%s: %s (line %d); run scripts/make-bad-gguf.py", p, je.text, je.line);
	free(p);
	return j;
}

static const char *model_path(void)
{
	static char buf[4096];
	const char *m = getenv("SMOKE_MODEL");
	if (m && *m)
		return m;
	snprintf(buf, sizeof(buf), "%s/.cache/smoke/models/gemma-3-270m-q4_k_m.gguf",
		 getenv("HOME") ? getenv("HOME") : "");
	return buf;
}

/* A scratch file with no name, opened again through /proc/self/fd/N (path
 * out): a failing test leaves nothing behind.  memfd keeps the thousands of
 * truncations below in memory (sparse, like tmpfs) instead of the disk's
 * journal; an unlinked temp file is the fallback. */
static int scratch_file(char *path, size_t cap)
{
	int fd = memfd_create("smoke-gguf", MFD_CLOEXEC);
	if (fd < 0) {
		const char *dir = getenv("TMPDIR");
		char tmpl[4096];
		snprintf(tmpl, sizeof(tmpl), "%s/smoke-gguf-XXXXXX", dir && *dir ? dir : "/tmp");
		fd = mkstemp(tmpl);
		ck_assert_msg(fd >= 0, "mkstemp %s: %s", tmpl, strerror(errno));
		unlink(tmpl);
	}
	snprintf(path, cap, "/proc/self/fd/%d", fd);
	return fd;
}

static uint64_t jstr_u64(json_t *j)
{
	ck_assert(json_is_string(j));
	return strtoull(json_string_value(j), NULL, 0);
}

static uint64_t jget_u64(json_t *o, const char *k)
{
	json_t *j = json_object_get(o, k);
	ck_assert_msg(j, "fixture lacks '%s'", k);
	return json_is_string(j) ? jstr_u64(j) : (uint64_t)json_integer_value(j);
}

/* Decode the hex of a string value; returns malloc'd bytes, *n = length. */
static uint8_t *unhex(json_t *j, size_t *n)
{
	const char *h = json_string_value(j);
	ck_assert(h);
	size_t len = strlen(h) / 2;
	uint8_t *b = malloc(len + 1);
	for (size_t i = 0; i < len; i++) {
		unsigned v;
		ck_assert_int_eq(sscanf(h + 2 * i, "%2x", &v), 1);
		b[i] = (uint8_t)v;
	}
	*n = len;
	return b;
}

static uint32_t fnv1a32(const uint8_t *p, uint64_t n)
{
	uint32_t h = 0x811c9dc5u;
	for (uint64_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x01000193u;
	return h;
}

static bool is_int_type(const char *t)
{
	return t[0] == 'u' || t[0] == 'i';
}

static bool is_signed_type(const char *t)
{
	return t[0] == 'i';
}

/* Integer fixture value as (negative?, magnitude/unsigned, signed). */
static void jint(json_t *j, const char *type, bool *neg, uint64_t *u, int64_t *s)
{
	const char *str = json_string_value(j);
	ck_assert(str);
	if (is_signed_type(type)) {
		*s = strtoll(str, NULL, 10);
		*neg = *s < 0;
		*u = (uint64_t)*s;
	} else {
		*u = strtoull(str, NULL, 10);
		*neg = false;
		*s = *u > INT64_MAX ? INT64_MAX : (int64_t)*u;
	}
}

static uint64_t jbits(json_t *j)
{
	return jstr_u64(json_object_get(j, "bits"));
}

/* ------------------------------------------------------------------------ */
/* Value comparison against the fixture encoding (see make-bad-gguf.py)     */

static void check_arr(const struct gguf_arr *a, json_t *v, const char *key, int depth);

static void check_elem(const struct gguf_arr *a, uint64_t i, json_t *val, const char *elem,
		       const char *key, int depth)
{
	if (is_int_type(elem)) {
		bool neg;
		uint64_t u, u2 = 0;
		int64_t s, s2 = 0;
		jint(val, elem, &neg, &u, &s);
		int rc = gguf_arr_i64(a, i, &s2);
		if (!neg && u > INT64_MAX) {
			ck_assert_int_eq(rc, -EINVAL);
		} else {
			ck_assert_int_eq(rc, 0);
			ck_assert_msg(s2 == s, "%s[%" PRIu64 "]", key, i);
		}
		rc = gguf_arr_u64(a, i, &u2);
		ck_assert_int_eq(rc, neg ? -EINVAL : 0);
		if (!neg)
			ck_assert_msg(u2 == u, "%s[%" PRIu64 "]", key, i);
		float f;
		ck_assert_int_eq(gguf_arr_f32(a, i, &f), -EINVAL);
		/* raw bytes agree with the typed read */
		size_t es = gguf_vtype_size(a->elem);
		const uint8_t *raw = gguf_arr_data(a);
		ck_assert_ptr_nonnull(raw);
		uint64_t r = 0;
		memcpy(&r, raw + i * es, es);
		if (!neg)
			ck_assert(r == u);
	} else if (!strcmp(elem, "f32")) {
		float f;
		double d;
		uint32_t bits;
		ck_assert_int_eq(gguf_arr_f32(a, i, &f), 0);
		memcpy(&bits, &f, 4);
		ck_assert_msg(bits == (uint32_t)jbits(val), "%s[%" PRIu64 "]", key, i);
		ck_assert_int_eq(gguf_arr_f64(a, i, &d), 0);
		ck_assert((float)d == f || (isnan(d) && isnan(f)));
		int64_t s;
		ck_assert_int_eq(gguf_arr_i64(a, i, &s), -EINVAL);
	} else if (!strcmp(elem, "f64")) {
		double d;
		uint64_t bits;
		ck_assert_int_eq(gguf_arr_f64(a, i, &d), 0);
		memcpy(&bits, &d, 8);
		ck_assert_msg(bits == jbits(val), "%s[%" PRIu64 "]", key, i);
		float f;
		int rc = gguf_arr_f32(a, i, &f);
		ck_assert_int_eq(rc, isfinite(d) && fabs(d) > FLT_MAX ? -EINVAL : 0);
	} else if (!strcmp(elem, "bool")) {
		bool b;
		ck_assert_int_eq(gguf_arr_bool(a, i, &b), 0);
		ck_assert(b == json_is_true(val));
		int64_t s;
		ck_assert_int_eq(gguf_arr_i64(a, i, &s), -EINVAL);
	} else if (!strcmp(elem, "string")) {
		size_t n, len;
		const char *s;
		uint8_t *want = unhex(val, &n);
		ck_assert_int_eq(gguf_arr_str(a, i, &s, &len), 0);
		ck_assert_msg(len == n && !memcmp(s, want, n), "%s[%" PRIu64 "]: '%.*s'",
			      key, i, (int)len, s);
		free(want);
		ck_assert_ptr_null(gguf_arr_data(a));
	} else if (!strcmp(elem, "array")) {
		struct gguf_arr sub;
		ck_assert_int_eq(gguf_arr_arr(a, i, &sub), 0);
		check_arr(&sub, val, key, depth + 1);
		ck_assert_ptr_null(gguf_arr_data(a));
	} else {
		ck_abort_msg("%s: fixture element type %s", key, elem);
	}
}

static void check_arr(const struct gguf_arr *a, json_t *v, const char *key, int depth)
{
	const char *elem = json_string_value(json_object_get(v, "elem"));
	ck_assert_msg(depth <= GGUF_MAX_ARRAY_DEPTH, "%s: depth", key);
	ck_assert_str_eq(gguf_vtype_name(a->elem), elem);
	ck_assert_uint_eq(a->n, jget_u64(v, "n"));
	size_t k;
	json_t *pair;
	json_array_foreach(json_object_get(v, "at"), k, pair) {
		uint64_t i = (uint64_t)json_integer_value(json_array_get(pair, 0));
		check_elem(a, i, json_array_get(pair, 1), elem, key, depth);
	}
	/* one past the end is refused by every accessor */
	const char *s;
	size_t len;
	int64_t iv;
	double d;
	bool b;
	struct gguf_arr sub;
	ck_assert_int_eq(gguf_arr_str(a, a->n, &s, &len), -EINVAL);
	ck_assert_int_eq(gguf_arr_i64(a, a->n, &iv), -EINVAL);
	ck_assert_int_eq(gguf_arr_f64(a, a->n, &d), -EINVAL);
	ck_assert_int_eq(gguf_arr_bool(a, a->n, &b), -EINVAL);
	ck_assert_int_eq(gguf_arr_arr(a, a->n, &sub), -EINVAL);
}

/* Check one key through every getter: the matching one returns the value,
 * the others refuse with -EINVAL and a message naming the key. */
static void check_kv(const struct gguf *g, json_t *e)
{
	const char *key = json_string_value(json_object_get(e, "key"));
	const char *type = json_string_value(json_object_get(e, "type"));
	json_t *val = json_object_get(e, "value");
	struct smk_err err = { 0 };
	uint32_t u32 = 0;
	uint64_t u64 = 0;
	int64_t i64 = 0;
	float f32 = 0;
	double f64 = 0;
	bool b = false;
	const char *s = NULL;
	size_t len = 0;
	struct gguf_arr arr;

	ck_assert_msg(gguf_has(g, key), "missing key %s", key);
	bool want_int = is_int_type(type), want_float = !strcmp(type, "f32") || !strcmp(type, "f64");
	int rc;

	if (want_int) {
		bool neg;
		uint64_t u;
		int64_t sv;
		jint(val, type, &neg, &u, &sv);
		rc = gguf_get_u32(g, key, &u32, &err);
		ck_assert_int_eq(rc, (!neg && u <= UINT32_MAX) ? 0 : -EINVAL);
		if (!rc)
			ck_assert_uint_eq(u32, u);
		else
			ck_assert_msg(strstr(err.msg, key) && strstr(err.msg, "range"), "%s", err.msg);
		rc = gguf_get_u64(g, key, &u64, &err);
		ck_assert_int_eq(rc, neg ? -EINVAL : 0);
		if (!rc)
			ck_assert(u64 == u);
		rc = gguf_get_i64(g, key, &i64, &err);
		ck_assert_int_eq(rc, (neg || u <= INT64_MAX) ? 0 : -EINVAL);
		if (!rc)
			ck_assert(i64 == sv);
	} else {
		ck_assert_int_eq(gguf_get_u32(g, key, &u32, &err), -EINVAL);
		ck_assert_msg(strstr(err.msg, key) && strstr(err.msg, type), "%s", err.msg);
		ck_assert_int_eq(gguf_get_u64(g, key, &u64, NULL), -EINVAL);
		ck_assert_int_eq(gguf_get_i64(g, key, &i64, NULL), -EINVAL);
	}

	if (want_float) {
		uint64_t bits = jbits(val);
		ck_assert_int_eq(gguf_get_f64(g, key, &f64, &err), 0);
		rc = gguf_get_f32(g, key, &f32, &err);
		if (!strcmp(type, "f32")) {
			uint32_t fb;
			ck_assert_int_eq(rc, 0);
			memcpy(&fb, &f32, 4);
			ck_assert_uint_eq(fb, bits);
		} else {
			uint64_t db;
			memcpy(&db, &f64, 8);
			ck_assert(db == bits);
			ck_assert_int_eq(rc, isfinite(f64) && fabs(f64) > FLT_MAX ? -EINVAL : 0);
			if (!rc)
				ck_assert(f32 == (float)f64);
		}
	} else {
		ck_assert_int_eq(gguf_get_f32(g, key, &f32, &err), -EINVAL);
		ck_assert_int_eq(gguf_get_f64(g, key, &f64, NULL), -EINVAL);
	}

	rc = gguf_get_bool(g, key, &b, &err);
	ck_assert_int_eq(rc, !strcmp(type, "bool") ? 0 : -EINVAL);
	if (!rc)
		ck_assert(b == json_is_true(val));

	rc = gguf_get_str(g, key, &s, &len, &err);
	ck_assert_int_eq(rc, !strcmp(type, "string") ? 0 : -EINVAL);
	if (!rc) {
		size_t n;
		uint8_t *want = unhex(val, &n);
		ck_assert_msg(len == n && !memcmp(s, want, n), "%s: '%.*s'", key, (int)len, s);
		free(want);
	}

	rc = gguf_get_arr(g, key, &arr, &err);
	ck_assert_int_eq(rc, !strcmp(type, "array") ? 0 : -EINVAL);
	if (!rc)
		check_arr(&arr, val, key, 1);
}

/* Compare the whole handle with a fixture description (valid.json or
 * model.json). */
static void check_against(const struct gguf *g, json_t *exp)
{
	ck_assert_uint_eq(gguf_version(g), jget_u64(exp, "version"));
	ck_assert_uint_eq(gguf_alignment(g), jget_u64(exp, "alignment"));
	ck_assert_uint_eq(gguf_data_offset(g), jget_u64(exp, "data_offset"));
	ck_assert_uint_eq(gguf_file_size(g), jget_u64(exp, "file_size"));
	ck_assert_uint_eq(gguf_n_kv(g), jget_u64(exp, "n_kv"));

	json_t *kvs = json_object_get(exp, "kv"), *e;
	size_t i;
	ck_assert_uint_eq(json_array_size(kvs), gguf_n_kv(g));
	json_array_foreach(kvs, i, e) {
		const char *key = json_string_value(json_object_get(e, "key"));
		const char *type = json_string_value(json_object_get(e, "type"));
		ck_assert_str_eq(gguf_kv_key(g, i), key);                /* file order */
		ck_assert_str_eq(gguf_vtype_name(gguf_kv_type(g, i)), type);
		check_kv(g, e);
	}
	ck_assert_ptr_null(gguf_kv_key(g, gguf_n_kv(g)));

	json_t *ts = json_object_get(exp, "tensors");
	ck_assert_uint_eq(gguf_n_tensors(g), json_array_size(ts));
	const uint8_t *base = gguf_base(g);
	json_array_foreach(ts, i, e) {
		const struct gguf_tensor *t = gguf_tensor(g, i);
		const char *name = json_string_value(json_object_get(e, "name"));
		json_t *ne = json_object_get(e, "ne");
		ck_assert_ptr_nonnull(t);
		ck_assert_str_eq(t->name, name);
		ck_assert_ptr_eq(gguf_find_tensor(g, name), t);
		ck_assert_uint_eq(t->type, jget_u64(e, "type"));
		ck_assert_uint_eq(t->n_dims, json_array_size(ne));
		uint64_t n = 1;
		for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
			uint64_t want = d < t->n_dims ? (uint64_t)json_integer_value(json_array_get(ne, d)) : 1;
			ck_assert_uint_eq(t->ne[d], want);
			n *= want;
		}
		ck_assert_uint_eq(t->n_elems, n);
		ck_assert_uint_eq(t->nbytes, jget_u64(e, "nbytes"));
		ck_assert_uint_eq(t->file_offset, jget_u64(e, "offset"));
		ck_assert_ptr_eq(t->data, base + t->file_offset);
		uint64_t head = t->nbytes < 4096 ? t->nbytes : 4096;
		ck_assert_msg(fnv1a32(t->data, head) == (uint32_t)jget_u64(e, "fnv1a_head"),
			      "tensor %s data", name);
	}
	ck_assert_ptr_null(gguf_tensor(g, gguf_n_tensors(g)));
	ck_assert_ptr_null(gguf_find_tensor(g, "no.such.tensor"));
}

/* ------------------------------------------------------------------------ */
/* valid.gguf                                                               */

START_TEST(test_valid)
{
	json_t *exp = fx_json("valid.json");
	char *path = fx_path("valid.gguf");
	struct gguf *g;
	struct smk_err err = { 0 };
	int rc = gguf_open(&g, path, &err);
	ck_assert_msg(rc == 0, "%s", err.msg);
	check_against(g, exp);

	/* absent keys: -ENOENT naming the key, also without an err */
	uint32_t v;
	ck_assert_int_eq(gguf_get_u32(g, "no.such.key", &v, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "no.such.key"));
	ck_assert_int_eq(gguf_get_u32(g, "no.such.key", &v, NULL), -ENOENT);
	ck_assert(!gguf_has(g, "no.such.key"));
	ck_assert(!gguf_has(g, "test"));       /* prefixes are not keys */
	struct gguf_arr a;
	ck_assert_int_eq(gguf_kv_arr(g, 0, &a), -EINVAL);   /* a string */
	ck_assert_int_eq(gguf_kv_arr(g, gguf_n_kv(g), &a), -EINVAL);

	/* the dump names keys, array summaries and tensors */
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	gguf_dump(g, f);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "test.arr.string_many"));
	ck_assert_ptr_nonnull(strstr(buf, "[string x 41]"));
	ck_assert_ptr_nonnull(strstr(buf, "[array x 3] {[string x 2] {\"x\", \"yz\"}"));
	ck_assert_ptr_nonnull(strstr(buf, "\"tab\\x09nl\\x0anul\\x00end\""));
	ck_assert_ptr_nonnull(strstr(buf, "t.q4_k"));
	ck_assert_ptr_nonnull(strstr(buf, qtype_name(12)));
	ck_assert_ptr_nonnull(strstr(buf, "8 tensors"));
	free(buf);

	gguf_close(g);
	gguf_close(NULL);
	free(path);
	json_decref(exp);
}
END_TEST

START_TEST(test_open_errors)
{
	struct gguf *g = (struct gguf *)1;
	struct smk_err err = { 0 };
	ck_assert_int_eq(gguf_open(&g, "/nonexistent/x.gguf", &err), -ENOENT);
	ck_assert_ptr_null(g);
	ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/x.gguf"));
	char *dir = fx_path("corpus");
	ck_assert_int_eq(gguf_open(&g, dir, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "regular file"));
	free(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The corpus                                                               */

START_TEST(test_corpus)
{
	json_t *e = json_array_get(g_corpus, (size_t)_i);
	const char *file = json_string_value(json_object_get(e, "file"));
	const char *expect = json_string_value(json_object_get(e, "expect"));
	char *path = fx_path(file);
	struct gguf *g = NULL;
	struct smk_err err = { 0 };
	int rc = gguf_open(&g, path, &err);

	if (!strcmp(expect, "ok")) {
		ck_assert_msg(rc == 0, "%s: %s", file, err.msg);
		ck_assert_uint_eq(gguf_alignment(g), jget_u64(e, "alignment"));
		ck_assert_uint_eq(gguf_n_kv(g), jget_u64(e, "n_kv"));
		ck_assert_uint_eq(gguf_n_tensors(g), jget_u64(e, "n_tensors"));
		ck_assert_uint_eq(gguf_data_offset(g), jget_u64(e, "data_offset"));
		FILE *null = fopen("/dev/null", "w");
		gguf_dump(g, null);
		fclose(null);
		gguf_close(g);
	} else {
		int want = !strcmp(expect, "EIO") ? -EIO : -EINVAL;
		ck_assert_msg(rc == want, "%s: rc %d (want %d), msg '%s'", file, rc, want, err.msg);
		ck_assert_ptr_null(g);
		ck_assert_int_eq(err.code, rc);
		ck_assert_msg(strstr(err.msg, path) == err.msg, "%s: message must start with the"
			      " path: '%s'", file, err.msg);
		size_t k;
		json_t *c;
		json_array_foreach(json_object_get(e, "contains"), k, c)
			ck_assert_msg(strstr(err.msg, json_string_value(c)),
				      "%s: message lacks \"%s\": '%s'", file,
				      json_string_value(c), err.msg);
	}
	free(path);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The real model                                                           */

/* Returns the model's fixture if the model is there and is the file that
 * model.json describes, else NULL after saying why (the test then passes
 * vacuously; Check has no skip). */
static json_t *model_fixture(void)
{
	struct stat st;
	if (stat(model_path(), &st) != 0) {
		fprintf(stderr, "SKIP: model %s absent (set SMOKE_MODEL)\n", model_path());
		return NULL;
	}
	json_t *exp = fx_json("model.json");
	if ((uint64_t)st.st_size != jget_u64(exp, "file_size")) {
		fprintf(stderr, "SKIP: %s is not the model model.json describes (%jd bytes,"
			" not %" PRIu64 "); rerun scripts/make-bad-gguf.py\n", model_path(),
			(intmax_t)st.st_size, jget_u64(exp, "file_size"));
		json_decref(exp);
		return NULL;
	}
	return exp;
}

START_TEST(test_model)
{
	json_t *exp = model_fixture();
	if (!exp)
		return;
	struct gguf *g;
	struct smk_err err = { 0 };
	ck_assert_msg(gguf_open(&g, model_path(), &err) == 0, "%s", err.msg);
	check_against(g, exp);

	/* Every token string, by random access, sits right after the previous
	 * one in the file: checks the sparse index at every index. */
	struct gguf_arr tok;
	ck_assert_int_eq(gguf_get_arr(g, "tokenizer.ggml.tokens", &tok, &err), 0);
	ck_assert_int_eq(tok.elem, GGUF_VT_STRING);
	const char *prev = NULL;
	size_t prev_len = 0;
	for (uint64_t i = 0; i < tok.n; i++) {
		const char *s;
		size_t len;
		uint64_t pfx;
		ck_assert_int_eq(gguf_arr_str(&tok, i, &s, &len), 0);
		memcpy(&pfx, s - 8, 8);
		ck_assert_uint_eq(pfx, len);
		if (prev)
			ck_assert_ptr_eq(s, prev + prev_len + 8);
		prev = s;
		prev_len = len;
	}
	struct gguf_arr sc;
	ck_assert_int_eq(gguf_get_arr(g, "tokenizer.ggml.scores", &sc, NULL), 0);
	ck_assert_uint_eq(sc.n, tok.n);
	ck_assert_ptr_nonnull(gguf_arr_data(&sc));

	FILE *null = fopen("/dev/null", "w");
	gguf_dump(g, null);
	fclose(null);
	gguf_close(g);
	json_decref(exp);
}
END_TEST

/* Shrink one copy of the model to each cut, largest first: ftruncate makes
 * every cut without copying, and cuts inside the tensor data stay sparse. */
static int cmp_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

#define CUT_GROUPS 4

START_TEST(test_truncate)
{
	json_t *exp = model_fixture();
	if (!exp)
		return;
	uint64_t size = jget_u64(exp, "file_size");
	uint64_t data_off = jget_u64(exp, "data_offset");
	uint64_t data_end = jget_u64(exp, "data_end");
	json_t *kvs = json_object_get(exp, "kv"), *ts = json_object_get(exp, "tensors"), *e;
	uint64_t *cuts = malloc(sizeof(*cuts) * 8192);
	size_t nc = 0, i;

	switch (_i) {
	case 0:   /* every byte of the first 4 KiB: header, first keys */
		for (uint64_t c = 0; c < 4096; c++)
			cuts[nc++] = c;
		break;
	case 1:   /* around each key and tensor-info boundary */
		json_array_foreach(kvs, i, e) {
			uint64_t o = jget_u64(e, "file_offset");
			for (int d = -1; d <= 13; d += 2)
				cuts[nc++] = o + (uint64_t)d;
		}
		json_array_foreach(ts, i, e) {
			uint64_t o = jget_u64(e, "info_offset");
			for (int d = -1; d <= 9; d += 2)
				cuts[nc++] = o + (uint64_t)d;
		}
		cuts[nc++] = data_off - 1;
		cuts[nc++] = data_off;
		cuts[nc++] = data_off + 1;
		break;
	case 2:   /* spread over the key/tensor-info area (mostly the vocab) */
		for (uint64_t k = 0; k < 400; k++)
			cuts[nc++] = 4096 + (data_off - 4096) * k / 400 + k % 7;
		break;
	case 3:   /* the data: each tensor's first and last byte, and spread */
		json_array_foreach(ts, i, e) {
			uint64_t o = jget_u64(e, "offset"), n = jget_u64(e, "nbytes");
			cuts[nc++] = o;
			cuts[nc++] = o + n - 1;
		}
		for (uint64_t k = 0; k < 300; k++)
			cuts[nc++] = data_off + (data_end - data_off) * k / 300 + k;
		cuts[nc++] = data_end - 1;
		break;
	}
	ck_assert_uint_le(nc, 8192);
	qsort(cuts, nc, sizeof(*cuts), cmp_desc);

	/* the copy: the real metadata (+ a little data), the rest a hole */
	char tmpl[64];
	int fd = scratch_file(tmpl, sizeof(tmpl));
	int src = open(model_path(), O_RDONLY);
	ck_assert_int_ge(src, 0);
	uint64_t copy = data_off + 4096 < size ? data_off + 4096 : size;
	char *buf = malloc(1 << 20);
	for (uint64_t done = 0; done < copy;) {
		size_t want = copy - done < (1 << 20) ? (size_t)(copy - done) : (1 << 20);
		ssize_t r = pread(src, buf, want, (off_t)done);
		ck_assert_int_gt(r, 0);
		ck_assert_int_eq(pwrite(fd, buf, (size_t)r, (off_t)done), r);
		done += (uint64_t)r;
	}
	free(buf);
	close(src);

	/* positive control: the full-length sparse copy opens */
	struct gguf *g;
	struct smk_err err = { 0 };
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	ck_assert_msg(gguf_open(&g, tmpl, &err) == 0, "full copy: %s", err.msg);
	ck_assert_uint_eq(gguf_n_tensors(g), json_array_size(ts));
	gguf_close(g);

	size_t tested = 0;
	for (size_t k = 0; k < nc; k++) {
		if (cuts[k] >= data_end || (k && cuts[k] == cuts[k - 1]))
			continue;
		ck_assert_int_eq(ftruncate(fd, (off_t)cuts[k]), 0);
		smk_err_clear(&err);
		g = NULL;
		int rc = gguf_open(&g, tmpl, &err);
		ck_assert_msg(rc == -EINVAL, "cut at %" PRIu64 ": rc %d '%s'", cuts[k], rc, err.msg);
		ck_assert_ptr_null(g);
		ck_assert_msg(strstr(err.msg, tmpl) == err.msg && strlen(err.msg) > strlen(tmpl) + 10,
			      "cut at %" PRIu64 ": '%s'", cuts[k], err.msg);
		tested++;
	}
	fprintf(stderr, "truncate group %d: %zu cuts failed cleanly\n", _i, tested);
	ck_assert_uint_ge(tested, _i == 2 ? 300 : 100);
	close(fd);
	free(cuts);
	json_decref(exp);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Truncations and mutations of valid.gguf                                  */

static uint8_t *read_all(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	rewind(f);
	uint8_t *b = malloc(*n);
	ck_assert_uint_eq(fread(b, 1, *n, f), *n);
	fclose(f);
	return b;
}

/* Walk everything an opened handle offers (arrays fully, recursively),
 * touching every byte an accessor points at. */
static volatile uint8_t g_sink;

static void walk_arr(const struct gguf_arr *a)
{
	for (uint64_t i = 0; i < a->n; i++) {
		const char *s;
		size_t len;
		int64_t v;
		double d;
		bool b;
		struct gguf_arr sub;
		if (gguf_arr_str(a, i, &s, &len) == 0)
			for (size_t k = 0; k < len; k++)
				g_sink ^= (uint8_t)s[k];
		gguf_arr_i64(a, i, &v);
		gguf_arr_f64(a, i, &d);
		gguf_arr_bool(a, i, &b);
		if (gguf_arr_arr(a, i, &sub) == 0)
			walk_arr(&sub);
	}
}

static void walk_all(const struct gguf *g)
{
	for (uint64_t i = 0; i < gguf_n_kv(g); i++) {
		struct gguf_arr a;
		if (gguf_kv_arr(g, i, &a) == 0)
			walk_arr(&a);
	}
	uint32_t sum = 0;
	for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor(g, i);
		sum += fnv1a32(t->data, t->nbytes);
	}
	(void)sum;
	FILE *null = fopen("/dev/null", "w");
	gguf_dump(g, null);
	fclose(null);
}

START_TEST(test_valid_truncate)
{
	char *path = fx_path("valid.gguf");
	json_t *exp = fx_json("valid.json");
	size_t n;
	uint8_t *b = read_all(path, &n);
	uint64_t end = 0;
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(exp, "tensors"), i, t) {
		uint64_t e = jget_u64(t, "offset") + jget_u64(t, "nbytes");
		end = e > end ? e : end;
	}
	char tmpl[64];
	int fd = scratch_file(tmpl, sizeof(tmpl));
	ck_assert_int_eq(write(fd, b, n), (ssize_t)n);
	/* every cut: before the end of the last tensor it must fail, from
	 * there on (tail padding) it must open */
	for (size_t cut = n + 1; cut-- > 0;) {
		ck_assert_int_eq(ftruncate(fd, (off_t)cut), 0);
		struct gguf *g = NULL;
		struct smk_err err = { 0 };
		int rc = gguf_open(&g, tmpl, &err);
		if (cut >= end) {
			ck_assert_msg(rc == 0, "cut %zu: %s", cut, err.msg);
			gguf_close(g);
		} else {
			ck_assert_msg(rc == -EINVAL && err.msg[0], "cut %zu: rc %d", cut, rc);
		}
	}
	close(fd);
	free(b);
	free(path);
	json_decref(exp);
}
END_TEST

START_TEST(test_fuzz)
{
	char *path = fx_path("valid.gguf");
	size_t n;
	uint8_t *orig = read_all(path, &n);
	uint8_t *b = malloc(n);
	char tmpl[64];
	int fd = scratch_file(tmpl, sizeof(tmpl));
	uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)_i;
	int opened = 0, refused = 0;
	for (int it = 0; it < 1500; it++) {
		memcpy(b, orig, n);
		int flips = 1 + (int)((x >> 60) & 3);
		for (int k = 0; k < flips; k++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			size_t pos = (size_t)(x >> 33) % n;
			/* bias towards the metadata, where the structure is */
			if ((x >> 20) & 1)
				pos %= 1600;
			uint8_t v = (uint8_t)(x >> 24);
			b[pos] = ((x >> 12) & 3) == 0 ? 0xff : ((x >> 12) & 3) == 1 ? 0 : v;
		}
		ck_assert_int_eq(ftruncate(fd, 0), 0);
		ck_assert_int_eq(pwrite(fd, b, n, 0), (ssize_t)n);
		struct gguf *g = NULL;
		struct smk_err err = { 0 };
		int rc = gguf_open(&g, tmpl, &err);
		if (rc == 0) {
			walk_all(g);
			gguf_close(g);
			opened++;
		} else {
			ck_assert_msg(rc == -EINVAL || rc == -ENOMEM, "rc %d", rc);
			ck_assert(err.msg[0]);
			refused++;
		}
	}
	fprintf(stderr, "fuzz %d: %d opened, %d refused\n", _i, opened, refused);
	close(fd);
	free(b);
	free(orig);
	free(path);
}
END_TEST

/* ------------------------------------------------------------------------ */

int main(void)
{
	json_error_t je;
	char cp[4096];   /* not fx_path(): ck_assert is only allowed inside tests */
	snprintf(cp, sizeof(cp), "%s/gguf/corpus.json", fixtures_dir());
	g_corpus = json_load_file(cp, 0, &je);
	if (!g_corpus) {
		fprintf(stderr, "%s: %s; run scripts/make-bad-gguf.py\n", cp, je.text);
		return 1;
	}

	Suite *s = suite_create("gguf");
	TCase *tc = tcase_create("valid");
	tcase_add_test(tc, test_valid);
	tcase_add_test(tc, test_open_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("corpus");
	tcase_add_loop_test(tc, test_corpus, 0, (int)json_array_size(g_corpus));
	suite_add_tcase(s, tc);

	tc = tcase_create("model");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_model);
	tcase_add_loop_test(tc, test_truncate, 0, CUT_GROUPS);
	suite_add_tcase(s, tc);

	tc = tcase_create("robust");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_valid_truncate);
	tcase_add_loop_test(tc, test_fuzz, 0, 4);
	suite_add_tcase(s, tc);

	int rc = ck_run(s);
	json_decref(g_corpus);
	return rc;
}
