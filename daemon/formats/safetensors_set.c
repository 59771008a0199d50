/* safetensors_set.c - a model directory: model.safetensors, or
 * model.safetensors.index.json and the shards its weight_map names.
 *
 * Each shard is opened and validated by st_open(); what this file adds is
 * the agreement between the index and the shards (every tensor exactly
 * once, where the index says) and one table over all shards: a flat array
 * in (shard, offset) order and a hash index of names into it
 * (util/hashtab.h).  The index file's JSON tree lives only during
 * st_set_open(): shard names are read back from the shards' paths
 * afterwards.  Rules are listed in safetensors.h.
 */
#include "formats/safetensors.h"

#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/ckmath.h"
#include "util/hashtab.h"
#include "formats/json_err.h"
#include "util/text.h"

#define ST_SINGLE_NAME "model.safetensors"
#define ST_INDEX_NAME "model.safetensors.index.json"
#define ST_MAX_INDEX ST_MAX_HEADER     /* bytes; real indexes are < 10 MB */

struct set_ent {
	const struct st_tensor *t;
	int file;
};

struct st_set {
	char *dir;
	int n_files;
	struct st_file **files;
	uint64_t n_tensors;
	struct set_ent *ents;       /* shard by shard, each in offset order */
	struct smk_hindex index;    /* name -> ents[] entry */
};

/* What st_set_open() works with; the JSON lives until it returns. */
struct set_ctx {
	struct st_set *s;
	struct smk_err *err;
	char *index_path;           /* NULL for a single-file directory */
	json_t *index;
	const char **shard_names;   /* n_files, into the index JSON */
};

/* st_set_find()'s key is a tensor name; entries are s->ents[]. */
struct name_key {
	const struct st_set *s;
	const char *name;
};

static bool name_eq(const void *key, int32_t e)
{
	const struct name_key *k = key;
	return !strcmp(k->s->ents[e].t->name, k->name);
}

/* dir + "/" + name; caller frees; NULL on ENOMEM. */
static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir);
	bool slash = n && dir[n - 1] == '/';
	char *p;
	return asprintf(&p, "%s%s%s", dir, slash ? "" : "/", name) < 0 ? NULL : p;
}

static const char *shard_name(const struct set_ctx *c, int i)
{
	return c->shard_names ? c->shard_names[i] : ST_SINGLE_NAME;
}

/* ------------------------------------------------------------------------ */
/* Index                                                                    */

static int read_index(struct set_ctx *c)
{
	const char *path = c->index_path;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		return smk_fail(c->err, e, "%s: cannot open: %s", path, strerror(-e));
	}
	struct stat st;
	int rc = 0;
	char *buf = NULL;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		smk_fail(c->err, rc, "%s: cannot stat: %s", path, strerror(-rc));
	} else if (!S_ISREG(st.st_mode)) {
		rc = smk_fail(c->err, -EINVAL, "%s: not a regular file", path);
	} else if ((uint64_t)st.st_size > ST_MAX_INDEX) {
		rc = smk_fail(c->err, -EINVAL, "%s: %" PRIu64 " bytes exceeds the limit of %u"
			      " for an index", path, (uint64_t)st.st_size, ST_MAX_INDEX);
	} else if (!(buf = malloc((size_t)st.st_size + 1))) {
		rc = smk_fail(c->err, -ENOMEM, "%s: out of memory", path);
	}
	size_t got = 0;
	while (!rc && got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			smk_fail(c->err, rc, "%s: read error: %s", path, strerror(-rc));
		} else if (r == 0) {
			rc = smk_fail(c->err, -EIO, "%s: file shrank while being read", path);
		}
		got += r > 0 ? (size_t)r : 0;
	}
	close(fd);
	if (!rc) {
		json_error_t je;
		bool nomem;
		c->index = json_loadb_checked(buf, got, JSON_REJECT_DUPLICATES, &je, &nomem);
		if (nomem)
			rc = smk_fail(c->err, -ENOMEM, "%s: out of memory reading it", path);
		else if (!c->index)
			rc = smk_fail(c->err, -EINVAL, "%s: not valid JSON: %s (byte %d, line %d,"
				      " column %d)", path, je.text, je.position, je.line, je.column);
		else if (!json_is_object(c->index))
			rc = smk_fail(c->err, -EINVAL, "%s: not a JSON object", path);
	}
	free(buf);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A shard name must name a file in dir itself: the index comes with the
 * download, and "../../etc/x" or "/dev/zero" must not be mapped. */
static bool shard_name_ok(const char *n)
{
	return *n && !strchr(n, '/') && !strchr(n, '\\') && strcmp(n, ".") && strcmp(n, "..");
}

/* weight_map -> the sorted unique shard names. */
static int index_shards(struct set_ctx *c)
{
	const char *ip = c->index_path;
	json_t *wm = json_object_get(c->index, "weight_map");
	if (!wm)
		return smk_fail(c->err, -EINVAL, "%s: no \"weight_map\" object (tensor name ->"
				" shard file)", ip);
	if (!json_is_object(wm))
		return smk_fail(c->err, -EINVAL, "%s: \"weight_map\" is not an object", ip);
	size_t n = json_object_size(wm);
	if (n == 0)
		return smk_fail(c->err, -EINVAL, "%s: \"weight_map\" is empty: it names no"
				" tensor and no shard", ip);
	const char **names = calloc(n, sizeof(*names));
	if (!names)
		return smk_fail(c->err, -ENOMEM, "%s: out of memory", ip);
	c->shard_names = names;
	const char *k;
	json_t *v;
	size_t i = 0;
	json_object_foreach(wm, k, v) {
		char pk[112], pv[112];
		if (!json_is_string(v))
			return smk_fail(c->err, -EINVAL, "%s: weight_map: tensor '%s': shard is"
					" not a string", ip,
					smk_printable(pk, sizeof(pk), k, strlen(k)));
		const char *sv = json_string_value(v);
		if (!shard_name_ok(sv))
			return smk_fail(c->err, -EINVAL, "%s: weight_map: tensor '%s': shard '%s'"
					" is not a plain file name in the model directory (empty,"
					" '.', '..', or contains a '/' or '\\')", ip,
					smk_printable(pk, sizeof(pk), k, strlen(k)),
					smk_printable(pv, sizeof(pv), sv, strlen(sv)));
		names[i++] = sv;
	}
	qsort(names, n, sizeof(*names), cmp_str);
	size_t u = 0;
	for (i = 0; i < n; i++)
		if (!u || strcmp(names[u - 1], names[i]))
			names[u++] = names[i];
	if (u > INT32_MAX)
		return smk_fail(c->err, -EINVAL, "%s: too many shards", ip);
	c->s->n_files = (int)u;
	return 0;
}

/* The first tensor that names shard `name`, for messages. */
static const char *first_tensor_of(const struct set_ctx *c, const char *name)
{
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(c->index, "weight_map"), k, v)
		if (!strcmp(json_string_value(v), name))
			return k;
	return "?";
}

static int open_shards(struct set_ctx *c)
{
	struct st_set *s = c->s;
	s->files = calloc((size_t)s->n_files, sizeof(*s->files));
	if (!s->files)
		return smk_fail(c->err, -ENOMEM, "%s: out of memory", s->dir);
	for (int i = 0; i < s->n_files; i++) {
		char *path = join(s->dir, shard_name(c, i));
		if (!path)
			return smk_fail(c->err, -ENOMEM, "%s: out of memory", s->dir);
		int rc = st_open(&s->files[i], path, c->err);
		free(path);
		if (rc && rc != -EINVAL && rc != -ENOMEM && c->index_path) {
			/* A shard that cannot be opened: say who asked for it. */
			const char *sn = shard_name(c, i), *tn = first_tensor_of(c, sn);
			char pn[112], pt[112];
			smk_err_prefix(c->err, "%s: weight_map: shard '%s' (of tensor '%s')",
				       c->index_path, smk_printable(pn, sizeof(pn), sn, strlen(sn)),
				       smk_printable(pt, sizeof(pt), tn, strlen(tn)));
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The table over all shards                                                */

static int build_table(struct set_ctx *c)
{
	struct st_set *s = c->s;
	const char *who = c->index_path ? c->index_path : s->dir;
	uint64_t total = 0;
	for (int i = 0; i < s->n_files; i++)
		if (ck_add(total, st_n_tensors(s->files[i]), &total) || total > SMK_HINDEX_MAX)
			return smk_fail(c->err, -EINVAL, "%s: more than %u tensors", who,
					SMK_HINDEX_MAX);
	s->n_tensors = total;
	s->ents = calloc((size_t)total + 1, sizeof(*s->ents));
	if (!s->ents || smk_hindex_init(&s->index, total))
		return smk_fail(c->err, -ENOMEM, "%s: out of memory for %" PRIu64 " tensors",
				who, total);
	uint64_t e = 0;
	for (int i = 0; i < s->n_files; i++) {
		for (uint64_t j = 0; j < st_n_tensors(s->files[i]); j++, e++) {
			const struct st_tensor *t = st_tensor_at(s->files[i], j);
			s->ents[e] = (struct set_ent){ t, i };
			struct name_key k = { s, t->name };
			int32_t first = smk_hindex_put(&s->index, smk_fnv1a64_str(t->name), name_eq,
						       &k, (int32_t)e);
			if (first == (int32_t)e)
				continue;
			const char *sa = shard_name(c, s->ents[first].file), *sb = shard_name(c, i);
			char pt[112], pa[112], pb[112];
			return smk_fail(c->err, -EINVAL, "%s: tensor '%s': is in two shards,"
					" '%s' and '%s'", who,
					smk_printable(pt, sizeof(pt), t->name, strlen(t->name)),
					smk_printable(pa, sizeof(pa), sa, strlen(sa)),
					smk_printable(pb, sizeof(pb), sb, strlen(sb)));
		}
	}
	return 0;
}

/* The index and the shards must agree both ways. */
static int check_index(struct set_ctx *c)
{
	struct st_set *s = c->s;
	const char *ip = c->index_path;
	json_t *wm = json_object_get(c->index, "weight_map");
	const char *k;
	json_t *v;
	json_object_foreach(wm, k, v) {
		int fi = -1;
		const char *want = json_string_value(v);
		char pt[112], pw[112], pf[112];
		if (st_set_find(s, k, &fi) && !strcmp(shard_name(c, fi), want))
			continue;
		smk_printable(pt, sizeof(pt), k, strlen(k));
		smk_printable(pw, sizeof(pw), want, strlen(want));
		if (fi < 0)
			return smk_fail(c->err, -EINVAL, "%s: weight_map: tensor '%s': shard '%s'"
					" does not contain it (nor does any other shard)", ip, pt, pw);
		const char *have = shard_name(c, fi);
		return smk_fail(c->err, -EINVAL, "%s: weight_map: tensor '%s': shard '%s' does"
				" not contain it (it is in shard '%s')", ip, pt, pw,
				smk_printable(pf, sizeof(pf), have, strlen(have)));
	}
	/* Every index entry matched a distinct tensor; any tensor left over
	 * is one the index does not list. */
	if (s->n_tensors == json_object_size(wm))
		return 0;
	for (uint64_t i = 0; i < s->n_tensors; i++) {
		const struct set_ent *e = &s->ents[i];
		if (json_object_get(wm, e->t->name))
			continue;
		const char *sn = shard_name(c, e->file);
		char pt[112], pf[112];
		return smk_fail(c->err, -EINVAL, "%s: weight_map: tensor '%s' of shard '%s' is"
				" not in the index", ip,
				smk_printable(pt, sizeof(pt), e->t->name, strlen(e->t->name)),
				smk_printable(pf, sizeof(pf), sn, strlen(sn)));
	}
	return 0;   /* unreachable: counts differ, so some tensor is missing */
}

/* ------------------------------------------------------------------------ */
/* Open / close                                                             */

void st_set_close(struct st_set *s)
{
	if (!s)
		return;
	for (int i = 0; s->files && i < s->n_files; i++)
		st_close(s->files[i]);
	free(s->files);
	free(s->ents);
	smk_hindex_deinit(&s->index);
	free(s->dir);
	free(s);
}

/* 1 if path exists, 0 if not (ENOENT), negative errno otherwise. */
static int exists(const char *path)
{
	struct stat st;
	if (!stat(path, &st))
		return 1;
	return errno == ENOENT ? 0 : -errno;
}

int st_set_open(struct st_set **out, const char *dir, struct smk_err *err)
{
	*out = NULL;
	struct st_set *s = calloc(1, sizeof(*s));
	struct set_ctx c = { .s = s, .err = err };
	char *single = NULL;
	int rc = 0;
	if (!s || !(s->dir = strdup(dir)) || !(single = join(dir, ST_SINGLE_NAME)) ||
	    !(c.index_path = join(dir, ST_INDEX_NAME))) {
		rc = smk_fail(err, -ENOMEM, "%s: out of memory", dir);
		goto out;
	}
	struct stat st;
	if (stat(dir, &st) < 0) {
		rc = -errno;
		smk_fail(err, rc, "%s: cannot open model directory: %s", dir, strerror(-rc));
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = smk_fail(err, -ENOTDIR, "%s: not a directory (a safetensors model is a"
			      " directory holding " ST_SINGLE_NAME " or " ST_INDEX_NAME ")", dir);
		goto out;
	}

	int have = exists(single);
	if (have == 1) {
		free(c.index_path);    /* transformers' order: the single file wins */
		c.index_path = NULL;
		s->n_files = 1;
	} else if (have == 0 && (have = exists(c.index_path)) == 1) {
		if (!(rc = read_index(&c)))
			rc = index_shards(&c);
	} else if (have == 0) {
		rc = smk_fail(err, -ENOENT, "%s: neither " ST_SINGLE_NAME " nor " ST_INDEX_NAME
			      " is there: not a safetensors model directory", dir);
	}
	if (have < 0)
		rc = smk_fail(err, have, "%s: cannot look for " ST_SINGLE_NAME " / "
			      ST_INDEX_NAME ": %s", dir, strerror(-have));
	if (!rc)
		rc = open_shards(&c);
	if (!rc)
		rc = build_table(&c);
	if (!rc && c.index_path)
		rc = check_index(&c);
out:
	json_decref(c.index);
	free(c.shard_names);
	free(c.index_path);
	free(single);
	if (rc) {
		st_set_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Accessors                                                                */

const char *st_set_dir(const struct st_set *s) { return s->dir; }
int st_set_n_files(const struct st_set *s) { return s->n_files; }
uint64_t st_set_n_tensors(const struct st_set *s) { return s->n_tensors; }

const struct st_file *st_set_file(const struct st_set *s, int i)
{
	return i >= 0 && i < s->n_files ? s->files[i] : NULL;
}

const struct st_tensor *st_set_tensor_at(const struct st_set *s, uint64_t i, int *file_idx)
{
	if (i >= s->n_tensors)
		return NULL;
	if (file_idx)
		*file_idx = s->ents[i].file;
	return s->ents[i].t;
}

const struct st_tensor *st_set_find(const struct st_set *s, const char *name, int *file_idx)
{
	if (!name)
		return NULL;
	struct name_key k = { s, name };
	int32_t i = smk_hindex_find(&s->index, smk_fnv1a64_str(name), name_eq, &k);
	if (i < 0)
		return NULL;
	if (file_idx)
		*file_idx = s->ents[i].file;
	return s->ents[i].t;
}
