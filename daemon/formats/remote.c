/* remote.c - a model in object storage opened as a GGUF handle (see
 * remote.h). */
#include "formats/remote.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/hf/hf_model.h"
#include "formats/json_err.h"
#include "formats/safetensors.h"
#include "objstore/osrc.h"

#define PREFIX_FIRST (8u << 20)
#define SMALL_MAX (64u << 20)   /* config/tokenizer files */
#define MAX_SHARDS 60           /* below OSRC_MAX_STAGED with the JSON files */

static int open_gguf(struct gguf **out, struct ostore *st, struct smk_err *err)
{
	struct osrc *s;
	int rc = osrc_open(&s, st, NULL, err);
	if (rc)
		return rc;
	/* SMOKE_OBJSTORE_PREFIX: a smaller first prefix, for the tests of the
	 * growth below (real headers are mostly under 8 MiB). */
	uint64_t first = PREFIX_FIRST;
	const char *ev = getenv("SMOKE_OBJSTORE_PREFIX");
	if (ev && strtoull(ev, NULL, 10) >= 64)
		first = strtoull(ev, NULL, 10);
	uint64_t size = osrc_size(s), have = first < size ? first : size;
	struct gguf *g = NULL;
	for (;;) {
		struct smk_err e = { 0 };
		if ((rc = osrc_pin(s, 0, have, err)))
			break;
		rc = gguf_open(&g, osrc_path(s), &e);
		/* Parsed from fetched bytes only when the tensor infos (and the
		 * zero padding after them) end inside the prefix. */
		if (!rc && gguf_data_offset(g) <= have)
			break;
		uint64_t next = rc ? have * 2 : gguf_data_offset(g);
		gguf_close(g);
		g = NULL;
		if (have == size) {
			/* The whole file and still no header: the file is bad. */
			if (!rc)
				rc = -EINVAL;
			*err = e;
			smk_err_prefix(err, "%s", ostore_url(st));
			break;
		}
		have = next < size ? next : size;
	}
	if (rc) {
		osrc_free(s);
		return rc;
	}
	struct osrc **remote = calloc(1, sizeof(*remote));
	if (!remote) {
		gguf_close(g);
		osrc_free(s);
		return smk_fail(err, -ENOMEM, "out of memory");
	}
	remote[0] = s;
	gguf_attach_remote(g, st, remote, ostore_url(st), err);
	gguf_guard_unfetched(g, have);
	*out = g;
	return 0;
}

/* The shard names model.safetensors.index.json lists (its weight_map
 * values, each once), or model.safetensors when there is no index. */
static int shard_names(struct ostore *st, char **names, int *n, struct smk_err *err)
{
	*n = 0;
	int rc = ostore_fetch_small(st, "model.safetensors.index.json", SMALL_MAX, err);
	if (rc == -ENOENT) {
		smk_err_clear(err);
		return (names[(*n)++] = strdup("model.safetensors")) ? 0 : -ENOMEM;
	}
	if (rc)
		return rc;
	char path[4200];
	snprintf(path, sizeof(path), "%s/model.safetensors.index.json", ostore_dir(st));
	json_error_t je;
	bool nomem = false;
	json_t *root = json_load_file_checked(path, JSON_REJECT_DUPLICATES, &je, &nomem);
	if (nomem)
		return smk_fail(err, -ENOMEM, "%smodel.safetensors.index.json: out of memory", ostore_url(st));
	json_t *map = root ? json_object_get(root, "weight_map") : NULL;
	if (!json_is_object(map)) {
		json_decref(root);
		return smk_fail(err, -EINVAL, "%smodel.safetensors.index.json: no \"weight_map\" object",
				ostore_url(st));
	}
	const char *k;
	json_t *v;
	json_object_foreach(map, k, v) {
		const char *s = json_string_value(v);
		if (!s) {
			rc = smk_fail(err, -EINVAL, "%smodel.safetensors.index.json: weight_map[\"%s\"] is not a string",
				      ostore_url(st), k);
			break;
		}
		bool seen = false;
		for (int i = 0; i < *n && !seen; i++)
			seen = !strcmp(names[i], s);
		if (seen)
			continue;
		if (*n == MAX_SHARDS) {
			rc = smk_fail(err, -E2BIG, "%s: more than %d shards", ostore_url(st), MAX_SHARDS);
			break;
		}
		if (!(names[(*n)++] = strdup(s))) {
			rc = -ENOMEM;
			break;
		}
	}
	json_decref(root);
	return rc;
}

/* A shard's header, then its 1-D tensors (copied by the reader at open). */
static int stage_shard(struct osrc *s, struct smk_err *err)
{
	uint8_t len8[8];
	int rc = osrc_pin(s, 0, 8 < osrc_size(s) ? 8 : osrc_size(s), err);
	if (rc)
		return rc;
	if (osrc_read(s, len8, 8, 0, err))
		return smk_fail(err, -EINVAL, "%s: shorter than a safetensors header length", osrc_url(s));
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | len8[i];
	if (hlen > osrc_size(s) - 8)
		return smk_fail(err, -EINVAL, "%s: header length %" PRIu64 " runs past the object (%"
				PRIu64 " bytes)", osrc_url(s), hlen, osrc_size(s));
	if ((rc = osrc_pin(s, 8, hlen, err)))
		return rc;
	struct st_file *f;
	if ((rc = st_open(&f, osrc_path(s), err)))
		return smk_err_prefix(err, "%s", osrc_url(s));
	for (uint64_t i = 0; i < st_n_tensors(f) && !rc; i++) {
		const struct st_tensor *t = st_tensor_at(f, i);
		if (t->n_dims <= 1)
			rc = osrc_pin(s, t->file_offset, t->nbytes, err);
	}
	st_close(f);
	return rc;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

static int open_hf(struct gguf **out, struct ostore *st, struct smk_err *err)
{
	static const char *const need[] = { "config.json", "tokenizer.json" };
	static const char *const maybe[] = { "tokenizer_config.json", "generation_config.json",
					     "chat_template.json" };
	int rc = 0;
	for (size_t i = 0; i < 2 && !rc; i++)
		rc = ostore_fetch_small(st, need[i], SMALL_MAX, err);
	for (size_t i = 0; i < 3 && !rc; i++)
		if ((rc = ostore_fetch_small(st, maybe[i], SMALL_MAX, err)) == -ENOENT) {
			rc = 0;
			smk_err_clear(err);
		}
	char *names[MAX_SHARDS] = { 0 };
	struct osrc *srcs[MAX_SHARDS] = { 0 };
	int n = 0;
	if (!rc)
		rc = shard_names(st, names, &n, err);
	for (int i = 0; i < n && !rc; i++)
		if (!(rc = osrc_open(&srcs[i], st, names[i], err)))
			rc = stage_shard(srcs[i], err);
	struct gguf *g = NULL;
	if (!rc)
		rc = hf_open(&g, ostore_dir(st), err);
	struct osrc **remote = NULL;
	if (!rc) {
		int ns = gguf_n_sources(g);
		remote = calloc((size_t)ns, sizeof(*remote));
		if (!remote)
			rc = smk_fail(err, -ENOMEM, "out of memory");
		for (int i = 0; i < ns && !rc; i++) {
			const char *sp = base_name(gguf_source_path(g, i));
			for (int k = 0; k < n && !remote[i]; k++)
				if (srcs[k] && !strcmp(sp, base_name(osrc_path(srcs[k])))) {
					remote[i] = srcs[k];
					srcs[k] = NULL;
				}
			if (!remote[i])
				rc = smk_fail(err, -EINVAL, "%s: source %s is not a staged shard",
					      ostore_url(st), sp);
		}
	}
	for (int i = 0; i < n; i++) {
		osrc_free(srcs[i]);
		free(names[i]);
	}
	if (rc) {
		if (remote) {
			for (int i = 0; i < gguf_n_sources(g); i++)
				osrc_free(remote[i]);
			free(remote);
		}
		gguf_close(g);
		return rc;
	}
	gguf_attach_remote(g, st, remote, ostore_url(st), err);
	*out = g;
	return 0;
}

int remote_open(struct gguf **out, const char *url, struct smk_err *err)
{
	*out = NULL;
	struct ostore *st;
	int rc = ostore_open(&st, url, err);
	if (rc)
		return rc;
	rc = ostore_is_dir(st) ? open_hf(out, st, err) : open_gguf(out, st, err);
	if (rc) {
		ostore_free(st);
		return rc;
	}
	/* Parsed: the staging names can go (descriptors and mappings stay). */
	ostore_unlink(st);
	return 0;
}
