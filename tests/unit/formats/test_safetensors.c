/* test_safetensors.c - safetensors reader and model directory tests.
 *
 * References are independent of safetensors.c: tests/fixtures/safetensors/
 * is written by scripts/make-bad-safetensors.py, whose manifest.json holds
 * what the writer put in each file (computed from the values written, and
 * cross-checked there against the upstream `safetensors` package when it is
 * installed).
 *   valid      every valid file against the manifest: sizes, every tensor's
 *              dtype, shape, counts, offsets and bytes (read back both
 *              through the mapping and with pread), offset order, lookup,
 *              metadata.
 *   bad        one file per rejection class: the errno, and a message that
 *              names the file, the tensor or header field, and the reason.
 *   sets       model directories (one file, three shards, both) and one
 *              bad directory per index/shard disagreement.
 *   robust     every prefix of each valid file (and one byte more) must be
 *              refused cleanly; random byte flips and digit changes of valid
 *              files, and of a sharded directory's index, must never crash,
 *              and whatever opens must be coherent.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ck_main.h"
#include "formats/safetensors.h"

static json_t *g_man;   /* manifest.json, loaded in main() */

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static const char *fixtures_dir(void)
{
	const char *d = getenv("SMOKE_FIXTURES");
	return d && *d ? d : "tests/fixtures";
}

/* Caller frees. */
static char *fx_path(const char *rel)
{
	char *p;
	ck_assert_int_ge(asprintf(&p, "%s/safetensors/%s", fixtures_dir(), rel), 0);
	return p;
}

static json_t *man_item(const char *list, int i)
{
	json_t *e = json_array_get(json_object_get(g_man, list), (size_t)i);
	ck_assert_msg(e, "manifest %s[%d] missing", list, i);
	return e;
}

static uint64_t ju64(json_t *o, const char *k)
{
	json_t *j = json_object_get(o, k);
	ck_assert_msg(json_is_integer(j), "manifest field '%s'", k);
	return (uint64_t)json_integer_value(j);
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	ck_assert_msg(s, "manifest field '%s'", k);
	return s;
}

static int code_of(const char *name)
{
	if (!strcmp(name, "EINVAL"))
		return -EINVAL;
	if (!strcmp(name, "ENOENT"))
		return -ENOENT;
	if (!strcmp(name, "ENOTDIR"))
		return -ENOTDIR;
	ck_abort_msg("manifest errno %s", name);
	return 0;
}

static uint32_t fnv1a32(const uint8_t *p, uint64_t n)
{
	uint32_t h = 0x811c9dc5u;
	for (uint64_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x01000193u;
	return h;
}

/* Caller frees; *n = size. */
static uint8_t *read_all(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	long sz = ftell(f);
	ck_assert_int_ge(sz, 0);
	rewind(f);
	uint8_t *b = malloc((size_t)sz + 1);
	ck_assert_uint_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
	fclose(f);
	*n = (size_t)sz;
	return b;
}

/* An anonymous scratch file, reopened by path through /proc/self/fd/N. */
static int scratch_file(char *path, size_t cap)
{
	int fd = memfd_create("smoke-st", MFD_CLOEXEC);
	if (fd < 0) {
		const char *dir = getenv("TMPDIR");
		char tmpl[4096];
		snprintf(tmpl, sizeof(tmpl), "%s/smoke-st-XXXXXX", dir && *dir ? dir : "/tmp");
		fd = mkstemp(tmpl);
		ck_assert_msg(fd >= 0, "mkstemp %s: %s", tmpl, strerror(errno));
		unlink(tmpl);
	}
	snprintf(path, cap, "/proc/self/fd/%d", fd);
	return fd;
}

static void assert_msg_has(const struct smk_err *err, json_t *has, const char *path)
{
	ck_assert_msg(strstr(err->msg, path), "message does not name %s: %s", path, err->msg);
	size_t i;
	json_t *h;
	json_array_foreach(has, i, h)
		ck_assert_msg(strstr(err->msg, json_string_value(h)),
			      "message lacks \"%s\": %s", json_string_value(h), err->msg);
}

/* One tensor against its manifest entry.  file_bytes: the whole file read
 * with stdio, so the data is checked without going through the mapping. */
static void check_tensor(const struct st_tensor *t, json_t *e, const uint8_t *file_bytes,
			 size_t file_size)
{
	const char *name = jstr(e, "name");
	ck_assert_msg(t, "tensor '%s' not found", name);
	ck_assert_str_eq(t->name, name);
	ck_assert_str_eq(st_dtype_name(t->dtype), jstr(e, "dtype"));
	json_t *shape = json_object_get(e, "shape");
	ck_assert_int_eq(t->n_dims, (int)json_array_size(shape));
	for (int d = 0; d < ST_MAX_DIMS; d++) {
		uint64_t want = d < t->n_dims ?
			(uint64_t)json_integer_value(json_array_get(shape, (size_t)d)) : 1;
		ck_assert_msg(t->shape[d] == want, "%s: shape[%d] = %" PRIu64 ", want %" PRIu64,
			      name, d, t->shape[d], want);
	}
	ck_assert_uint_eq(t->n_elems, ju64(e, "n_elems"));
	ck_assert_uint_eq(t->nbytes, ju64(e, "nbytes"));
	ck_assert_uint_eq(t->nbytes, t->n_elems * st_dtype_size(t->dtype));
	ck_assert_uint_eq(t->file_offset, ju64(e, "file_offset"));
	ck_assert_uint_le(t->file_offset + t->nbytes, file_size);
	ck_assert_msg(fnv1a32(t->data, t->nbytes) == (uint32_t)ju64(e, "fnv"),
		      "%s: data hash differs", name);
	ck_assert_msg(!memcmp(t->data, file_bytes + t->file_offset, t->nbytes),
		      "%s: mapping and file differ", name);
}

/* ------------------------------------------------------------------------ */
/* Single files                                                             */

START_TEST(test_valid)
{
	json_t *v = man_item("valid", _i);
	char *path = fx_path(jstr(v, "file"));
	size_t fsize;
	uint8_t *bytes = read_all(path, &fsize);
	struct st_file *f = NULL;
	struct smk_err err = { 0 };
	int rc = st_open(&f, path, &err);
	ck_assert_msg(rc == 0, "%s: rc %d: %s", path, rc, err.msg);
	ck_assert_str_eq(st_path(f), path);
	ck_assert_uint_eq(st_file_size(f), ju64(v, "size"));
	ck_assert_uint_eq(st_file_size(f), fsize);
	ck_assert_uint_eq(st_data_offset(f), ju64(v, "data_offset"));

	json_t *ts = json_object_get(v, "tensors"), *e;
	size_t i;
	ck_assert_uint_eq(st_n_tensors(f), json_array_size(ts));
	json_array_foreach(ts, i, e)
		check_tensor(st_find(f, jstr(e, "name")), e, bytes, fsize);

	/* offset order, exactly as the generator sorted the names */
	json_t *order = json_object_get(v, "order");
	json_array_foreach(order, i, e) {
		const struct st_tensor *t = st_tensor_at(f, i);
		ck_assert_ptr_nonnull(t);
		ck_assert_str_eq(t->name, json_string_value(e));
		ck_assert_ptr_eq(st_find(f, t->name), t);
	}
	ck_assert_ptr_null(st_tensor_at(f, st_n_tensors(f)));
	ck_assert_ptr_null(st_tensor_at(f, UINT64_MAX));
	ck_assert_ptr_null(st_find(f, "no.such.tensor"));
	ck_assert_ptr_null(st_find(f, ""));
	ck_assert_ptr_null(st_find(f, NULL));

	/* metadata: every key, in file order, and nothing else */
	json_t *meta = json_object_get(v, "metadata");
	const char *k;
	ck_assert_uint_eq(st_n_metadata(f), json_object_size(meta));
	i = 0;
	json_object_foreach(meta, k, e) {
		ck_assert_pstr_eq(st_metadata(f, k), json_string_value(e));
		const char *mk = NULL, *mv = NULL;
		ck_assert_int_eq(st_metadata_at(f, i++, &mk, &mv), 0);
		ck_assert_str_eq(mk, k);
		ck_assert_str_eq(mv, json_string_value(e));
	}
	const char *mk = "x", *mv = "y";
	ck_assert_int_eq(st_metadata_at(f, st_n_metadata(f), &mk, &mv), -EINVAL);
	ck_assert_str_eq(mk, "x");
	ck_assert_ptr_null(st_metadata(f, "no-such-key"));
	ck_assert_ptr_null(st_metadata(f, NULL));
	ck_assert_ptr_null(st_metadata(f, "__metadata__"));

	st_close(f);
	free(bytes);
	free(path);
}
END_TEST

START_TEST(test_bad)
{
	json_t *b = man_item("bad", _i);
	char *path = fx_path(jstr(b, "file"));
	struct st_file *f = (struct st_file *)&f;   /* must be reset to NULL */
	struct smk_err err = { 0 };
	int rc = st_open(&f, path, &err);
	int want = code_of(jstr(b, "code"));
	ck_assert_msg(rc == want, "%s: rc %d, want %d: %s", path, rc, want, err.msg);
	ck_assert_ptr_null(f);
	ck_assert_int_eq(err.code, rc);
	assert_msg_has(&err, json_object_get(b, "has"), path);
	/* the same without a message buffer */
	ck_assert_int_eq(st_open(&f, path, NULL), want);
	ck_assert_ptr_null(f);
	free(path);
}
END_TEST

START_TEST(test_dtypes)
{
	/* From the safetensors README / crate's Dtype, not from safetensors.c. */
	static const struct { enum st_dtype t; const char *name; size_t size; } want[] = {
		{ ST_F64, "F64", 8 }, { ST_F32, "F32", 4 }, { ST_F16, "F16", 2 },
		{ ST_BF16, "BF16", 2 }, { ST_I64, "I64", 8 }, { ST_I32, "I32", 4 },
		{ ST_I16, "I16", 2 }, { ST_I8, "I8", 1 }, { ST_U64, "U64", 8 },
		{ ST_U32, "U32", 4 }, { ST_U16, "U16", 2 }, { ST_U8, "U8", 1 },
		{ ST_BOOL, "BOOL", 1 }, { ST_F8_E4M3, "F8_E4M3", 1 },
		{ ST_F8_E5M2, "F8_E5M2", 1 },
	};
	ck_assert_int_eq(sizeof(want) / sizeof(want[0]), ST_DTYPE_COUNT);
	for (size_t i = 0; i < ST_DTYPE_COUNT; i++) {
		enum st_dtype t = ST_DTYPE_COUNT;
		ck_assert_str_eq(st_dtype_name(want[i].t), want[i].name);
		ck_assert_uint_eq(st_dtype_size(want[i].t), want[i].size);
		ck_assert_int_eq(st_dtype_parse(want[i].name, &t), 0);
		ck_assert_int_eq(t, want[i].t);
	}
	ck_assert_str_eq(st_dtype_name(ST_DTYPE_COUNT), "unknown");
	ck_assert_str_eq(st_dtype_name((enum st_dtype)-1), "unknown");
	ck_assert_uint_eq(st_dtype_size(ST_DTYPE_COUNT), 0);
	enum st_dtype t = ST_F32;
	ck_assert_int_eq(st_dtype_parse("f32", &t), -EINVAL);
	ck_assert_int_eq(st_dtype_parse("C64", &t), -EINVAL);
	ck_assert_int_eq(st_dtype_parse("", &t), -EINVAL);
	ck_assert_int_eq(st_dtype_parse(NULL, &t), -EINVAL);
	ck_assert_int_eq(t, ST_F32);
}
END_TEST

START_TEST(test_open_errors)
{
	struct st_file *f = NULL;
	struct smk_err err = { 0 };
	char *missing = fx_path("valid/does-not-exist.safetensors");
	ck_assert_int_eq(st_open(&f, missing, &err), -ENOENT);
	ck_assert_ptr_null(f);
	ck_assert_ptr_nonnull(strstr(err.msg, missing));
	ck_assert_ptr_nonnull(strstr(err.msg, "cannot open"));
	char *dir = fx_path("valid");
	ck_assert_int_eq(st_open(&f, dir, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a regular file"));
	st_close(NULL);
	free(missing);
	free(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Model directories                                                        */

START_TEST(test_sets)
{
	json_t *v = man_item("sets", _i);
	char *dir = fx_path(jstr(v, "dir"));
	struct st_set *s = NULL;
	struct smk_err err = { 0 };
	int rc = st_set_open(&s, dir, &err);
	ck_assert_msg(rc == 0, "%s: rc %d: %s", dir, rc, err.msg);
	ck_assert_str_eq(st_set_dir(s), dir);

	json_t *files = json_object_get(v, "files"), *e;
	size_t i;
	ck_assert_int_eq(st_set_n_files(s), (int)json_array_size(files));
	uint8_t **bytes = calloc(json_array_size(files), sizeof(*bytes));
	size_t *sizes = calloc(json_array_size(files), sizeof(*sizes));
	json_array_foreach(files, i, e) {
		char *want;
		ck_assert_int_ge(asprintf(&want, "%s/%s", dir, json_string_value(e)), 0);
		const struct st_file *f = st_set_file(s, (int)i);
		ck_assert_ptr_nonnull(f);
		ck_assert_str_eq(st_path(f), want);
		bytes[i] = read_all(want, &sizes[i]);
		free(want);
	}
	ck_assert_ptr_null(st_set_file(s, -1));
	ck_assert_ptr_null(st_set_file(s, st_set_n_files(s)));

	json_t *ts = json_object_get(v, "tensors");
	ck_assert_uint_eq(st_set_n_tensors(s), json_array_size(ts));
	json_array_foreach(ts, i, e) {
		int fi = -1;
		const struct st_tensor *t = st_set_find(s, jstr(e, "name"), &fi);
		ck_assert_int_eq(fi, (int)ju64(e, "file"));
		check_tensor(t, e, bytes[fi], sizes[fi]);
		ck_assert_ptr_eq(st_find(st_set_file(s, fi), t->name), t);
		ck_assert_ptr_eq(st_set_find(s, t->name, NULL), t);
	}
	/* tensor_at: each tensor once, shard by shard, offsets rising within */
	int prev_f = 0;
	uint64_t prev_off = 0;
	for (uint64_t k = 0; k < st_set_n_tensors(s); k++) {
		int fi = -1;
		const struct st_tensor *t = st_set_tensor_at(s, k, &fi);
		ck_assert_ptr_nonnull(t);
		ck_assert_int_ge(fi, prev_f);
		if (fi == prev_f)
			ck_assert_uint_ge(t->file_offset, prev_off);
		int fj = -1;
		ck_assert_ptr_eq(st_set_find(s, t->name, &fj), t);
		ck_assert_int_eq(fj, fi);
		ck_assert_ptr_eq(st_set_tensor_at(s, k, NULL), t);
		prev_f = fi;
		prev_off = t->file_offset;
	}
	int fi = 77;
	ck_assert_ptr_null(st_set_tensor_at(s, st_set_n_tensors(s), &fi));
	ck_assert_ptr_null(st_set_find(s, "no.such.tensor", &fi));
	ck_assert_ptr_null(st_set_find(s, NULL, &fi));
	ck_assert_int_eq(fi, 77);

	for (i = 0; i < json_array_size(files); i++)
		free(bytes[i]);
	free(bytes);
	free(sizes);
	st_set_close(s);
	free(dir);
}
END_TEST

START_TEST(test_bad_sets)
{
	json_t *b = man_item("bad_sets", _i);
	char *dir = fx_path(jstr(b, "dir"));
	struct st_set *s = (struct st_set *)&s;
	struct smk_err err = { 0 };
	int rc = st_set_open(&s, dir, &err);
	int want = code_of(jstr(b, "code"));
	ck_assert_msg(rc == want, "%s: rc %d, want %d: %s", dir, rc, want, err.msg);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(err.code, rc);
	assert_msg_has(&err, json_object_get(b, "has"), dir);
	ck_assert_int_eq(st_set_open(&s, dir, NULL), want);
	ck_assert_ptr_null(s);
	free(dir);
}
END_TEST

START_TEST(test_set_errors)
{
	struct st_set *s = NULL;
	struct smk_err err = { 0 };
	char *missing = fx_path("sets/does-not-exist");
	ck_assert_int_eq(st_set_open(&s, missing, &err), -ENOENT);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(strstr(err.msg, missing));
	char *file = fx_path("sets/single/model.safetensors");
	ck_assert_int_eq(st_set_open(&s, file, &err), -ENOTDIR);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a directory"));
	/* a trailing slash is not doubled in the shard paths */
	char *slash = fx_path("sets/single/");
	ck_assert_int_eq(st_set_open(&s, slash, &err), 0);
	ck_assert_str_eq(st_path(st_set_file(s, 0)), file);
	st_set_close(s);
	st_set_close(NULL);
	free(missing);
	free(file);
	free(slash);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Robustness                                                               */

/* Everything an opened file promises, checked from the outside. */
static void walk_all(const struct st_file *f)
{
	uint64_t size = st_file_size(f), pos = st_data_offset(f);
	ck_assert_uint_le(pos, size);
	for (uint64_t i = 0; i < st_n_tensors(f); i++) {
		const struct st_tensor *t = st_tensor_at(f, i);
		ck_assert_uint_eq(t->file_offset, pos);   /* tiled, in order */
		ck_assert_uint_eq(t->nbytes, t->n_elems * st_dtype_size(t->dtype));
		ck_assert_int_le(t->n_dims, ST_MAX_DIMS);
		uint64_t n = 1;
		for (int d = 0; d < ST_MAX_DIMS; d++)
			n *= t->shape[d];
		ck_assert_uint_eq(n, t->n_elems);
		ck_assert_ptr_eq(st_find(f, t->name), t);
		(void)fnv1a32(t->data, t->nbytes);          /* touch every byte */
		pos += t->nbytes;
	}
	ck_assert_uint_eq(pos, size);
	for (uint64_t i = 0; i < st_n_metadata(f); i++) {
		const char *k, *v;
		ck_assert_int_eq(st_metadata_at(f, i, &k, &v), 0);
		ck_assert_ptr_eq(st_metadata(f, k), v);
	}
}

START_TEST(test_truncate)
{
	json_t *v = man_item("valid", _i);
	char *path = fx_path(jstr(v, "file"));
	size_t n;
	uint8_t *b = read_all(path, &n);
	char tmp[64];
	int fd = scratch_file(tmp, sizeof(tmp));
	/* one byte more: it belongs to no tensor */
	ck_assert_int_eq(pwrite(fd, b, n, 0), (ssize_t)n);
	ck_assert_int_eq(pwrite(fd, "\0", 1, (off_t)n), 1);
	struct st_file *f = NULL;
	struct smk_err err = { 0 };
	ck_assert_int_eq(st_open(&f, tmp, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "data section"));
	/* the file itself opens; every shorter prefix is refused */
	for (size_t cut = n + 1; cut-- > 0;) {
		ck_assert_int_eq(ftruncate(fd, (off_t)cut), 0);
		int rc = st_open(&f, tmp, &err);
		if (cut == n) {
			ck_assert_msg(rc == 0, "full file: %s", err.msg);
			walk_all(f);
			st_close(f);
			continue;
		}
		ck_assert_msg(rc == -EINVAL, "%s cut at %zu: rc %d", path, cut, rc);
		ck_assert_ptr_null(f);
		ck_assert_msg(strstr(err.msg, tmp), "cut %zu: %s", cut, err.msg);
	}
	close(fd);
	free(b);
	free(path);
}
END_TEST

static uint64_t rnd(uint64_t *x)
{
	*x = *x * 6364136223846793005ull + 1442695040888963407ull;
	return *x >> 33;
}

/* Mutations of valid files.  Random bytes mostly break the JSON; changing
 * one digit of the header to another keeps it JSON and reaches the checks
 * on shapes, offsets and tiling; the length field gets its own share. */
START_TEST(test_fuzz)
{
	static const char *const files[] = { "valid/multi.safetensors", "valid/pretty.safetensors" };
	char *path = fx_path(files[_i % 2]);
	size_t n;
	uint8_t *orig = read_all(path, &n);
	uint8_t *b = malloc(n);
	uint64_t hlen;
	memcpy(&hlen, orig, 8);
	char tmp[64];
	int fd = scratch_file(tmp, sizeof(tmp));
	uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)_i;
	int opened = 0, refused = 0;
	for (int it = 0; it < 2000; it++) {
		memcpy(b, orig, n);
		int muts = 1 + (int)(rnd(&x) % 3);
		for (int k = 0; k < muts; k++) {
			uint64_t kind = rnd(&x) % 8;
			if (kind < 4) {            /* a digit of the header */
				size_t pos = 8 + (size_t)(rnd(&x) % hlen);
				for (size_t s = 0; s < hlen && !(b[pos] >= '0' && b[pos] <= '9'); s++)
					pos = 8 + (pos - 8 + 1) % hlen;
				if (b[pos] >= '0' && b[pos] <= '9')
					b[pos] = (uint8_t)('0' + rnd(&x) % 10);
			} else if (kind < 7) {     /* any byte, mostly the header */
				size_t pos = (size_t)(rnd(&x) % (kind == 6 ? n : 8 + hlen));
				b[pos] = (uint8_t)rnd(&x);
			} else {                   /* the length field */
				b[rnd(&x) % 8] ^= (uint8_t)(1u << (rnd(&x) % 8));
			}
		}
		ck_assert_int_eq(ftruncate(fd, 0), 0);
		ck_assert_int_eq(pwrite(fd, b, n, 0), (ssize_t)n);
		struct st_file *f = NULL;
		struct smk_err err = { 0 };
		int rc = st_open(&f, tmp, &err);
		if (rc == 0) {
			walk_all(f);
			st_close(f);
			opened++;
		} else {
			ck_assert_msg(rc == -EINVAL || rc == -ENOMEM, "rc %d: %s", rc, err.msg);
			ck_assert_ptr_null(f);
			ck_assert_msg(strstr(err.msg, tmp), "%s", err.msg);
			refused++;
		}
	}
	fprintf(stderr, "fuzz %d (%s): %d opened, %d refused\n", _i, files[_i % 2],
		opened, refused);
	close(fd);
	free(b);
	free(orig);
	free(path);
}
END_TEST

/* Mutations of a sharded directory's index (digits, and any byte): the
 * shards are linked into a scratch directory beside a mutated index. */
START_TEST(test_fuzz_index)
{
	char *src = fx_path("sets/sharded");
	char *ipath = fx_path("sets/sharded/model.safetensors.index.json");
	size_t n;
	uint8_t *orig = read_all(ipath, &n);
	uint8_t *b = malloc(n);
	const char *tmpdir = getenv("TMPDIR");
	char dir[4096], path[4200], abs_src[4096];
	snprintf(dir, sizeof(dir), "%s/smoke-st-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_ptr_nonnull(realpath(src, abs_src));
	json_t *files = json_object_get(man_item("sets", 1), "files"), *e;
	size_t i;
	ck_assert_str_eq(jstr(man_item("sets", 1), "dir"), "sets/sharded");
	json_array_foreach(files, i, e) {
		char target[8300];
		snprintf(target, sizeof(target), "%s/%s", abs_src, json_string_value(e));
		snprintf(path, sizeof(path), "%s/%s", dir, json_string_value(e));
		ck_assert_int_eq(symlink(target, path), 0);
	}
	snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
	uint64_t x = 0x2545f4914f6cdd1dull + 0x9e3779b97f4a7c15ull * (uint64_t)(_i + 1);
	int opened = 0, refused = 0;
	for (int it = 0; it < 1000; it++) {
		memcpy(b, orig, n);
		size_t pos = (size_t)(rnd(&x) % n);
		if (rnd(&x) % 2) {
			b[pos] = (uint8_t)rnd(&x);
		} else {   /* a shard-number digit: names a shard that may not exist */
			for (size_t k = 0; k < n && !(b[pos] >= '0' && b[pos] <= '9'); k++)
				pos = (pos + 1) % n;
			b[pos] = (uint8_t)('0' + rnd(&x) % 10);
		}
		FILE *f = fopen(path, "wb");
		ck_assert_ptr_nonnull(f);
		ck_assert_uint_eq(fwrite(b, 1, n, f), n);
		fclose(f);
		struct st_set *s = NULL;
		struct smk_err err = { 0 };
		int rc = st_set_open(&s, dir, &err);
		if (rc == 0) {
			for (int fi = 0; fi < st_set_n_files(s); fi++)
				walk_all(st_set_file(s, fi));
			for (uint64_t k = 0; k < st_set_n_tensors(s); k++) {
				int fi = -1, fj = -2;
				const struct st_tensor *t = st_set_tensor_at(s, k, &fi);
				ck_assert_ptr_eq(st_set_find(s, t->name, &fj), t);
				ck_assert_int_eq(fi, fj);
			}
			st_set_close(s);
			opened++;
		} else {
			ck_assert_msg(rc == -EINVAL || rc == -ENOENT || rc == -ENOMEM,
				      "rc %d: %s", rc, err.msg);
			ck_assert_ptr_null(s);
			ck_assert_msg(strstr(err.msg, dir), "%s", err.msg);
			refused++;
		}
	}
	fprintf(stderr, "fuzz index %d: %d opened, %d refused\n", _i, opened, refused);
	unlink(path);
	json_array_foreach(files, i, e) {
		snprintf(path, sizeof(path), "%s/%s", dir, json_string_value(e));
		unlink(path);
	}
	rmdir(dir);
	free(b);
	free(orig);
	free(ipath);
	free(src);
}
END_TEST

/* ------------------------------------------------------------------------ */

int main(void)
{
	json_error_t je;
	char mp[4096];   /* not fx_path(): ck_assert is only allowed inside tests */
	snprintf(mp, sizeof(mp), "%s/safetensors/manifest.json", fixtures_dir());
	g_man = json_load_file(mp, 0, &je);
	if (!g_man) {
		fprintf(stderr, "%s: %s; run scripts/make-bad-safetensors.py\n", mp, je.text);
		return 1;
	}
	int n_valid = (int)json_array_size(json_object_get(g_man, "valid"));

	Suite *s = suite_create("safetensors");
	TCase *tc = tcase_create("valid");
	tcase_add_loop_test(tc, test_valid, 0, n_valid);
	tcase_add_test(tc, test_dtypes);
	tcase_add_test(tc, test_open_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad");
	tcase_add_loop_test(tc, test_bad, 0,
			    (int)json_array_size(json_object_get(g_man, "bad")));
	suite_add_tcase(s, tc);

	tc = tcase_create("sets");
	tcase_add_loop_test(tc, test_sets, 0,
			    (int)json_array_size(json_object_get(g_man, "sets")));
	tcase_add_loop_test(tc, test_bad_sets, 0,
			    (int)json_array_size(json_object_get(g_man, "bad_sets")));
	tcase_add_test(tc, test_set_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("robust");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_truncate, 0, n_valid);
	tcase_add_loop_test(tc, test_fuzz, 0, 4);
	tcase_add_loop_test(tc, test_fuzz_index, 0, 2);
	suite_add_tcase(s, tc);

	int rc = ck_run(s);
	json_decref(g_man);
	return rc;
}
