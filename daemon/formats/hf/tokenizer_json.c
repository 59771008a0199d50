/* tokenizer_json.c - a Hugging Face tokenizer.json as GGUF tokenizer keys
 * (see tokenizer_json.h for what is supported and why).
 *
 * tokenizer.json, as the `tokenizers` library (tokenizers/src/tokenizer/
 * serialization.rs and the serde of each component) writes it:
 *   {"added_tokens": [{"id", "content", "single_word", "lstrip", "rstrip",
 *                      "normalized", "special"}...],
 *    "normalizer": null | {"type": ...},  "pre_tokenizer": null | {"type": ...},
 *    "post_processor": null | {"type": ...}, "decoder": ...,
 *    "model": {"type": "BPE", "vocab": {text: id}, "merges": ["a b"] | [["a", "b"]],
 *              "unk_token", "fuse_unk", "byte_fallback", "ignore_merges",
 *              "dropout", "continuing_subword_prefix", "end_of_word_suffix"}}
 * The ids of model.vocab and added_tokens together number the vocabulary
 * (added tokens usually follow the model's; an added token may also name a
 * model entry by its id).  Ids nobody uses become "[PAD<id>]" tokens of type
 * UNUSED, as convert_hf_to_gguf.py writes them.
 *
 * The mapping to keys follows convert_hf_to_gguf.py / gguf-py's SpecialVocab
 * where llama.cpp has a key (tokens, token_type, merges, special ids,
 * add_bos/add_eos with the post-processor deciding over tokenizer_config.json,
 * chat templates); where `tokenizers` behaves in a way llama.cpp does not
 * model, smoke.tokenizer.* keys say so (tokenizer.c documents them).
 */
#include "formats/hf/tokenizer_json.h"

#include "formats/json_err.h"
#include "util/text.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define K "tokenizer.ggml."
#define S "smoke.tokenizer."

/* Vocabulary bounds: ids up to 16 Mi, at most as many unused ids (gaps) as
 * used ones (+ 1024), so that a hostile file cannot make us allocate for
 * ids nobody uses. */
#define TJ_MAX_ID (1u << 24)
#define TJ_MAX_FILE (1024ull << 20)

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* The GPT-2, Llama 3, Qwen2 and o200k pre-tokenizer regexes exactly as their
 * tokenizer.json files spell them (and the (?i:) spelled out as llama.cpp
 * writes it, which means the same). */
static const struct {
	const char *re;
	const char *pre;
} known_regex[] = {
	{ "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", "gpt-2" },
	{ "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
	  "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", "llama-bpe" },
	{ "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
	  "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", "llama-bpe" },
	{ "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
	  "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", "qwen2" },
	{ "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
	  "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", "qwen2" },
	/* o200k (gpt-4o, gpt-oss): tiktoken's o200k_base regex.  Not llama.cpp's
	 * "gpt-4o", which approximates its case classes (see tokenizer_bpe.c), but
	 * smoke's exact splitter of the same regex. */
	{ "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
	  "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
	  "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}|"
	  " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", "smoke-o200k" },
};

static const char METASPACE[] = "\xe2\x96\x81";       /* U+2581 */

struct tj {
	const char *dir;
	struct smk_err *err;
	char file[4200];        /* the file being read, for messages */
	json_t *root, *cfg, *gen;
	json_t *vocab;          /* model.vocab */

	/* vocabulary by id; text NULL = unused id */
	uint32_t n;
	const char **text;
	int32_t *type;
	uint32_t n_model;       /* entries in model.vocab */

	/* added tokens: id per added_tokens[] entry, and content -> id */
	size_t n_added;
	uint32_t *added_id;
	json_t *added_map;
	uint32_t *lstrip, *rstrip;
	size_t n_lstrip, n_rstrip;

	/* pipeline */
	bool byte_level, escape, nfc, prepend, metaspace_split, byte_fallback;
	bool spm_norm;          /* a Replace/Prepend normalizer (not identity) */
	const char *pre;        /* byte-level: gpt-2 / llama-bpe / qwen2 / smoke-o200k */
	const char *space_prefix;       /* NULL, "every", "missing", "first" */

	/* special ids, -1 = none */
	int32_t bos, eos, eot, unk, pad;
	int32_t tmpl_first, tmpl_last;
	bool post_decides, add_bos, add_eos;
	uint32_t *eog;
	size_t n_eog;
};

__attribute__((format(printf, 3, 4)))
static int fail(struct tj *j, int code, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return smk_fail(j->err, code, "%s: %s", j->file, msg);
}

static void set_file(struct tj *j, const char *name)
{
	snprintf(j->file, sizeof(j->file), "%s/%s", j->dir, name);
}

/* A JSON string (valid UTF-8: jansson checked it) in a message, readable:
 * control bytes as \xNN, the rest as is, cut after 60 bytes (util/text.h). */
static const char *quote(const char *s, char *buf, size_t cap)
{
	return smk_escape(buf, cap, s, strlen(s), 60, 0);
}

/* ------------------------------------------------------------------------- */
/* JSON access with paths in the messages                                    */

/* obj.key as a bool; absent or null -> def. */
static int get_bool(struct tj *j, json_t *obj, const char *key, bool def, bool *out,
		    const char *where)
{
	json_t *v = json_object_get(obj, key);
	*out = def;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return fail(j, -EINVAL, "%s%s%s must be true or false", where, *where ? "." : "", key);
	*out = json_is_true(v);
	return 0;
}

/* obj.key as a string or null (-> *out NULL); absent -> NULL. */
static int get_str(struct tj *j, json_t *obj, const char *key, const char **out,
		   const char *where)
{
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return fail(j, -EINVAL, "%s.%s must be a string", where, key);
	*out = json_string_value(v);
	return 0;
}

/* The "type" of a component object. */
static int get_type(struct tj *j, json_t *obj, const char **out, const char *where)
{
	if (!json_is_object(obj))
		return fail(j, -EINVAL, "%s must be an object or null", where);
	int rc = get_str(j, obj, "type", out, where);
	if (!rc && !*out)
		rc = fail(j, -EINVAL, "%s has no \"type\"", where);
	return rc;
}

/* Reals that JSON_DECODE_INT_AS_REAL made of integers back to integers where
 * they fit (see load_json). */
static json_t *ints_back(json_t *v)
{
	if (json_is_real(v)) {
		double d = json_real_value(v);
		/* The range first: converting a double outside json_int_t's
		 * range (a file's 1e64) is undefined behaviour in C, so the
		 * round-trip test may only run on values that fit (found by
		 * tests/fuzz, fuzz_tokenizer_json). */
		if (d >= -9.2e18 && d <= 9.2e18 && d == (double)(json_int_t)d) {
			json_t *i = json_integer((json_int_t)d);
			if (i) {
				json_decref(v);
				return i;
			}
		}
	} else if (json_is_object(v)) {
		const char *k;
		json_t *e;
		void *tmp;
		json_object_foreach_safe(v, tmp, k, e)
			json_object_set_new(v, k, ints_back(json_incref(e)));
	} else if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++)
			json_array_set_new(v, i, ints_back(json_incref(json_array_get(v, i))));
	}
	return v;
}

static int load_json(struct tj *j, const char *name, json_t **out, bool required)
{
	struct stat st;
	json_error_t je;

	*out = NULL;
	set_file(j, name);
	if (stat(j->file, &st) != 0) {
		if (errno == ENOENT && !required)
			return 0;
		return fail(j, errno == ENOENT ? -ENOENT : -EIO, "cannot read it (%s)", strerror(errno));
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > TJ_MAX_FILE)
		return fail(j, -EINVAL, "not a regular file of at most 1 GiB");
	bool nomem;
	*out = json_load_file_checked(j->file, JSON_REJECT_DUPLICATES, &je, &nomem);
	if (!*out && json_error_code(&je) == json_error_numeric_overflow) {
		/* transformers writes model_max_length = int(1e30) (its
		 * VERY_LARGE_INTEGER, e.g. in gpt-oss's tokenizer_config.json),
		 * beyond json_int_t: read numbers as reals, then give back the
		 * integers that fit (ids, flags); the huge one stays a real. */
		*out = json_load_file_checked(j->file, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &je, &nomem);
		if (*out)
			*out = ints_back(*out);
	}
	if (nomem)
		return fail(j, -ENOMEM, "out of memory reading it");
	if (!*out)
		return fail(j, -EINVAL, "line %d column %d: %s", je.line, je.column, je.text);
	if (!json_is_object(*out))
		return fail(j, -EINVAL, "the top level is not a JSON object");
	return 0;
}

/* ------------------------------------------------------------------------- */
/* model and vocabulary                                                      */

static int read_id(struct tj *j, json_t *v, uint32_t *id, const char *what)
{
	*id = 0;
	if (!json_is_integer(v))
		return fail(j, -EINVAL, "%s must be an integer id", what);
	json_int_t x = json_integer_value(v);
	if (x < 0 || x >= (json_int_t)TJ_MAX_ID)
		return fail(j, -EINVAL, "%s is %lld, outside 0..%u", what, (long long)x, TJ_MAX_ID - 1);
	*id = (uint32_t)x;
	return 0;
}

static int read_model(struct tj *j, json_t *model)
{
	const char *type, *s;
	bool flag;
	int rc;

	if (!json_is_object(model))
		return fail(j, -EINVAL, "\"model\" is missing or not an object");
	if ((rc = get_str(j, model, "type", &type, "model")))
		return rc;
	if (!type)
		return fail(j, -EINVAL, "model.type is missing");
	if (strcmp(type, "BPE") != 0) {
		char q[200];
		return fail(j, -ENOTSUP, "model type '%s' is not supported (BPE only)",
			    quote(type, q, sizeof(q)));
	}
	json_t *d = json_object_get(model, "dropout");
	if (d && !json_is_null(d) && !(json_is_number(d) && json_number_value(d) == 0.0))
		return fail(j, -ENOTSUP, "model.dropout is set: BPE dropout samples random "
			    "tokenizations, which inference does not use");
	if ((rc = get_str(j, model, "continuing_subword_prefix", &s, "model")))
		return rc;
	if (s && *s)
		return fail(j, -ENOTSUP, "model.continuing_subword_prefix '%s' is not supported", s);
	if ((rc = get_str(j, model, "end_of_word_suffix", &s, "model")))
		return rc;
	if (s && *s)
		return fail(j, -ENOTSUP, "model.end_of_word_suffix '%s' is not supported", s);
	/* ignore_merges and fuse_unk are checked here, written by write_keys. */
	if ((rc = get_bool(j, model, "byte_fallback", false, &j->byte_fallback, "model")) ||
	    (rc = get_bool(j, model, "ignore_merges", false, &flag, "model")) ||
	    (rc = get_bool(j, model, "fuse_unk", false, &flag, "model")))
		return rc;

	j->vocab = json_object_get(model, "vocab");
	if (!json_is_object(j->vocab))
		return fail(j, -EINVAL, "model.vocab must be an object (token text -> id)");
	if (json_object_size(j->vocab) == 0)
		return fail(j, -EINVAL, "model.vocab is empty");
	if (json_object_size(j->vocab) >= TJ_MAX_ID)
		return fail(j, -EINVAL, "model.vocab has %zu entries (max %u)",
			    json_object_size(j->vocab), TJ_MAX_ID - 1);
	j->n_model = (uint32_t)json_object_size(j->vocab);
	return 0;
}

/* Number the vocabulary: model.vocab and added_tokens. */
static int read_vocab(struct tj *j)
{
	json_t *added = json_object_get(j->root, "added_tokens");
	const char *key;
	json_t *v;
	uint32_t max = 0, id;
	char q[200], q2[200], what[300];
	int rc;

	if (added && !json_is_null(added) && !json_is_array(added))
		return fail(j, -EINVAL, "added_tokens must be an array");
	j->n_added = json_is_array(added) ? json_array_size(added) : 0;
	if (j->n_added >= TJ_MAX_ID)
		return fail(j, -EINVAL, "added_tokens has %zu entries", j->n_added);

	json_object_foreach(j->vocab, key, v) {
		snprintf(what, sizeof(what), "model.vocab['%s']", quote(key, q, sizeof(q)));
		if ((rc = read_id(j, v, &id, what)))
			return rc;
		if (id > max)
			max = id;
	}
	for (size_t i = 0; i < j->n_added; i++) {
		json_t *a = json_array_get(added, i);
		snprintf(what, sizeof(what), "added_tokens[%zu].id", i);
		if (!json_is_object(a))
			return fail(j, -EINVAL, "added_tokens[%zu] must be an object", i);
		if ((rc = read_id(j, json_object_get(a, "id"), &id, what)))
			return rc;
		if (id > max)
			max = id;
	}
	uint64_t used = (uint64_t)j->n_model + j->n_added;
	if ((uint64_t)max + 1 > 2 * used + 1024)
		return fail(j, -EINVAL, "the largest token id is %u but there are only %llu tokens "
			    "(too many unused ids)", max, (unsigned long long)used);
	j->n = max + 1;
	j->text = calloc(j->n, sizeof(*j->text));
	j->type = calloc(j->n, sizeof(*j->type));
	j->added_id = calloc(j->n_added + 1, sizeof(*j->added_id));
	j->lstrip = calloc(j->n_added + 1, sizeof(*j->lstrip));
	j->rstrip = calloc(j->n_added + 1, sizeof(*j->rstrip));
	j->added_map = json_object();
	if (!j->text || !j->type || !j->added_id || !j->lstrip || !j->rstrip || !j->added_map)
		return fail(j, -ENOMEM, "out of memory for %u tokens", j->n);

	json_object_foreach(j->vocab, key, v) {
		id = (uint32_t)json_integer_value(v);
		if (j->text[id])
			return fail(j, -EINVAL, "model.vocab: id %u is used by both '%s' and '%s'", id,
				    quote(j->text[id], q, sizeof(q)), quote(key, q2, sizeof(q2)));
		j->text[id] = key;
		j->type[id] = TT_NORMAL;
		/* SentencePiece byte tokens, used by byte_fallback. */
		if (j->byte_fallback && strlen(key) == 6 && memcmp(key, "<0x", 3) == 0 &&
		    key[5] == '>' && strchr("0123456789ABCDEF", key[3]) &&
		    strchr("0123456789ABCDEF", key[4]))
			j->type[id] = TT_BYTE;
	}

	for (size_t i = 0; i < j->n_added; i++) {
		json_t *a = json_array_get(added, i);
		const char *content;
		bool special, normalized, single, ls, rs;
		snprintf(what, sizeof(what), "added_tokens[%zu]", i);
		if ((rc = get_str(j, a, "content", &content, what)))
			return rc;
		if (!content || !*content)
			return fail(j, -EINVAL, "%s.content must be a non-empty string", what);
		if ((rc = get_bool(j, a, "special", false, &special, what)) ||
		    (rc = get_bool(j, a, "normalized", !special, &normalized, what)) ||
		    (rc = get_bool(j, a, "single_word", false, &single, what)) ||
		    (rc = get_bool(j, a, "lstrip", false, &ls, what)) ||
		    (rc = get_bool(j, a, "rstrip", false, &rs, what)))
			return rc;
		id = (uint32_t)json_integer_value(json_object_get(a, "id"));
		if (single)
			return fail(j, -ENOTSUP, "%s ('%s') has single_word set, which is not "
				    "supported", what, quote(content, q, sizeof(q)));
		if (j->text[id] && strcmp(j->text[id], content) != 0)
			return fail(j, -EINVAL, "%s: '%s' has id %u, which is already '%s'", what,
				    quote(content, q, sizeof(q)), id, quote(j->text[id], q2, sizeof(q2)));
		/* The same text under another id would make ids ambiguous. */
		json_t *other = json_object_get(j->vocab, content);
		if (other && (uint32_t)json_integer_value(other) != id)
			return fail(j, -EINVAL, "%s: '%s' has id %u but model.vocab gives it %lld", what,
				    quote(content, q, sizeof(q)), id, (long long)json_integer_value(other));
		json_t *prev = json_object_get(j->added_map, content);
		if (prev && (uint32_t)json_integer_value(prev) != id)
			return fail(j, -EINVAL, "%s: '%s' is also added with id %lld", what,
				    quote(content, q, sizeof(q)), (long long)json_integer_value(prev));
		if (json_object_set_new(j->added_map, content, json_integer(id)))
			return fail(j, -ENOMEM, "out of memory");
		/* A normalising pipeline matches normalized added tokens in the
		 * normalised text; with the SentencePiece-style normaliser that
		 * moves the leading U+2581 around them, which we do not model. */
		if (normalized && j->spm_norm)
			return fail(j, -ENOTSUP, "%s ('%s') is matched after the SentencePiece-style "
				    "normalizer (\"normalized\": true), which is not supported", what,
				    quote(content, q, sizeof(q)));
		j->text[id] = content;
		j->type[id] = special ? TT_CONTROL : TT_USER;
		j->added_id[i] = id;
		if (ls)
			j->lstrip[j->n_lstrip++] = id;
		if (rs)
			j->rstrip[j->n_rstrip++] = id;
	}
	return 0;
}

/* ------------------------------------------------------------------------- */
/* normalizer and pre-tokenizer                                              */

static int read_normalizer(struct tj *j, json_t *n, const char *where, bool *seen_other)
{
	const char *type;
	char q[200], w[64];
	int rc;

	if (!n || json_is_null(n))
		return 0;
	if ((rc = get_type(j, n, &type, where)))
		return rc;
	if (strcmp(type, "Sequence") == 0) {
		json_t *list = json_object_get(n, "normalizers");
		if (!json_is_array(list))
			return fail(j, -EINVAL, "%s.normalizers must be an array", where);
		for (size_t i = 0; i < json_array_size(list); i++) {
			snprintf(w, sizeof(w), "%s.normalizers[%zu]", where, i);
			if ((rc = read_normalizer(j, json_array_get(list, i), w, seen_other)))
				return rc;
		}
		return 0;
	}
	if (strcmp(type, "NFC") == 0) {
		/* NFC first: after U+2581 escaping it would still be the same, but
		 * we only claim what we have seen. */
		if (*seen_other || j->nfc)
			return fail(j, -ENOTSUP, "%s: NFC is only supported as the first normalizer", where);
		j->nfc = true;
		return 0;
	}
	*seen_other = true;
	j->spm_norm = true;
	if (strcmp(type, "Replace") == 0) {
		json_t *pat = json_object_get(n, "pattern");
		const char *str = json_is_object(pat) ? json_string_value(json_object_get(pat, "String")) : NULL;
		const char *content = json_string_value(json_object_get(n, "content"));
		if (str && content && strcmp(str, " ") == 0 && strcmp(content, METASPACE) == 0) {
			j->escape = true;
			return 0;
		}
		return fail(j, -ENOTSUP, "%s: only Replace(\" \" -> \"\\u2581\") is supported", where);
	}
	if (strcmp(type, "Prepend") == 0) {
		const char *p = json_string_value(json_object_get(n, "prepend"));
		if (p && strcmp(p, METASPACE) == 0) {
			j->prepend = true;
			return 0;
		}
		return fail(j, -ENOTSUP, "%s: only Prepend(\"\\u2581\") is supported", where);
	}
	return fail(j, -ENOTSUP, "%s type '%s' is not supported (supported: NFC, "
		    "Replace(\" \" -> \"\\u2581\"), Prepend(\"\\u2581\"), Sequence of those)",
		    where, quote(type, q, sizeof(q)));
}

static int read_byte_level(struct tj *j, json_t *p, const char *where, bool after_split)
{
	bool prefix, use_regex;
	int rc;
	if ((rc = get_bool(j, p, "add_prefix_space", true, &prefix, where)) ||
	    (rc = get_bool(j, p, "use_regex", true, &use_regex, where)))
		return rc;
	if (after_split && (use_regex || prefix))
		return fail(j, -ENOTSUP, "%s: ByteLevel after a Split must have use_regex and "
			    "add_prefix_space false", where);
	if (!after_split && !use_regex)
		return fail(j, -ENOTSUP, "%s: ByteLevel without a regex (use_regex false) and "
			    "without a Split before it is not supported", where);
	j->byte_level = true;
	if (!after_split)
		j->pre = "gpt-2";
	if (prefix)
		j->space_prefix = "missing";
	return 0;
}

static int read_split(struct tj *j, json_t *p, const char *where)
{
	json_t *pat = json_object_get(p, "pattern");
	const char *re = json_is_object(pat) ? json_string_value(json_object_get(pat, "Regex")) : NULL;
	const char *behavior;
	bool invert;
	char q[300];
	int rc;

	if (!re)
		return fail(j, -ENOTSUP, "%s.pattern: only {\"Regex\": ...} patterns are supported", where);
	if ((rc = get_str(j, p, "behavior", &behavior, where)) ||
	    (rc = get_bool(j, p, "invert", false, &invert, where)))
		return rc;
	for (size_t i = 0; i < sizeof(known_regex) / sizeof(known_regex[0]); i++) {
		if (strcmp(re, known_regex[i].re) != 0)
			continue;
		/* The known regexes match every character, so keeping the matches
		 * (Isolated) and removing what lies between them (Removed with
		 * invert) split the same way. */
		if (!behavior || !((strcmp(behavior, "Isolated") == 0 && !invert) ||
				   (strcmp(behavior, "Removed") == 0 && invert)))
			return fail(j, -ENOTSUP, "%s.behavior '%s'%s is not supported (Isolated only)",
				    where, behavior ? behavior : "(none)", invert ? " with invert" : "");
		j->pre = known_regex[i].pre;
		return 0;
	}
	return fail(j, -ENOTSUP, "%s: the Split regex '%s' is not recognised (supported: the "
		    "GPT-2, Llama 3, Qwen2 and o200k regexes)", where, quote(re, q, sizeof(q)));
}

static int read_metaspace(struct tj *j, json_t *p, const char *where)
{
	const char *rep, *scheme;
	bool split, add_prefix;
	int rc;
	if ((rc = get_str(j, p, "replacement", &rep, where)) ||
	    (rc = get_str(j, p, "prepend_scheme", &scheme, where)) ||
	    (rc = get_bool(j, p, "split", true, &split, where)))
		return rc;
	if (!rep || strcmp(rep, METASPACE) != 0)
		return fail(j, -ENOTSUP, "%s.replacement must be \"\\u2581\"", where);
	if (!scheme) {
		/* Files written before prepend_scheme existed say add_prefix_space. */
		if ((rc = get_bool(j, p, "add_prefix_space", true, &add_prefix, where)))
			return rc;
		scheme = add_prefix ? "always" : "never";
	}
	if (strcmp(scheme, "always") == 0)
		j->space_prefix = "missing";
	else if (strcmp(scheme, "first") == 0)
		j->space_prefix = "first";
	else if (strcmp(scheme, "never") != 0)
		return fail(j, -EINVAL, "%s.prepend_scheme '%s' is not always, first or never", where, scheme);
	j->escape = true;
	j->metaspace_split = split;
	return 0;
}

static int read_pre(struct tj *j, json_t *p)
{
	const char *type;
	char q[200], w[64];
	int rc;

	if (!p || json_is_null(p))
		return 0;
	if ((rc = get_type(j, p, &type, "pre_tokenizer")))
		return rc;
	if (strcmp(type, "ByteLevel") == 0)
		return read_byte_level(j, p, "pre_tokenizer", false);
	if (strcmp(type, "Metaspace") == 0)
		return read_metaspace(j, p, "pre_tokenizer");
	if (strcmp(type, "Split") == 0 && j->escape) {
		/* Gemma's Split(" ", MergedWithPrevious): after the Replace
		 * normalizer there is no space left to split at. */
		json_t *pat = json_object_get(p, "pattern");
		const char *str = json_is_object(pat) ? json_string_value(json_object_get(pat, "String")) : NULL;
		if (str && strcmp(str, " ") == 0)
			return 0;
	}
	if (strcmp(type, "Sequence") == 0) {
		json_t *list = json_object_get(p, "pretokenizers");
		if (!json_is_array(list))
			return fail(j, -EINVAL, "pre_tokenizer.pretokenizers must be an array");
		size_t n = json_array_size(list);
		const char *t0 = NULL, *t1 = NULL;
		if (n >= 1 && (rc = get_type(j, json_array_get(list, 0), &t0, "pre_tokenizer.pretokenizers[0]")))
			return rc;
		if (n >= 2 && (rc = get_type(j, json_array_get(list, 1), &t1, "pre_tokenizer.pretokenizers[1]")))
			return rc;
		if (n == 1 && (strcmp(t0, "ByteLevel") == 0 || strcmp(t0, "Metaspace") == 0)) {
			json_t *x = json_array_get(list, 0);
			return strcmp(t0, "ByteLevel") == 0 ?
				read_byte_level(j, x, "pre_tokenizer.pretokenizers[0]", false) :
				read_metaspace(j, x, "pre_tokenizer.pretokenizers[0]");
		}
		if (n == 2 && strcmp(t0, "Split") == 0 && strcmp(t1, "ByteLevel") == 0) {
			if ((rc = read_split(j, json_array_get(list, 0), "pre_tokenizer.pretokenizers[0]")))
				return rc;
			return read_byte_level(j, json_array_get(list, 1), "pre_tokenizer.pretokenizers[1]",
					       true);
		}
		for (size_t i = 0; i < n; i++) {
			const char *t;
			snprintf(w, sizeof(w), "pre_tokenizer.pretokenizers[%zu]", i);
			if ((rc = get_type(j, json_array_get(list, i), &t, w)))
				return rc;
			if (strcmp(t, "Split") == 0 && (rc = read_split(j, json_array_get(list, i), w)))
				return rc;
		}
		return fail(j, -ENOTSUP, "pre_tokenizer: this Sequence is not supported (supported: "
			    "[Split(regex), ByteLevel] or a single ByteLevel or Metaspace)");
	}
	return fail(j, -ENOTSUP, "pre_tokenizer type '%s' is not supported (supported: ByteLevel, "
		    "Sequence[Split, ByteLevel], Metaspace)", quote(type, q, sizeof(q)));
}

/* Which tokenizer this is, from the normalizer and the pre-tokenizer. */
static int read_pipeline(struct tj *j)
{
	bool other = false;
	int rc;
	if ((rc = read_normalizer(j, json_object_get(j->root, "normalizer"), "normalizer", &other)) ||
	    (rc = read_pre(j, json_object_get(j->root, "pre_tokenizer"))))
		return rc;
	if (j->byte_level) {
		if (j->escape || j->prepend)
			return fail(j, -ENOTSUP, "a ByteLevel pre-tokenizer after a SentencePiece-style "
				    "normalizer is not supported");
		return 0;
	}
	if (!j->escape)
		return fail(j, -ENOTSUP, "neither a ByteLevel pre-tokenizer nor SentencePiece-style "
			    "spaces (a Replace(\" \" -> \"\\u2581\") normalizer or a Metaspace "
			    "pre-tokenizer): this BPE layout is not supported");
	if (j->prepend)
		j->space_prefix = "every";      /* unconditional, before Metaspace looks */
	return 0;
}

/* ------------------------------------------------------------------------- */
/* merges                                                                    */

static int write_merges(struct tj *j, struct gguf_builder *b, json_t *merges)
{
	char q[200], *buf = NULL;
	size_t cap = 0;
	int rc = 0;

	if (!json_is_array(merges))
		return fail(j, -EINVAL, "model.merges must be an array");
	size_t n = json_array_size(merges), kept = 0;
	/* Pass 1 validates and counts what can be written as "a b"; a pair with
	 * a space inside can never apply (spaces are mapped before merging). */
	for (int pass = 0; pass < 2 && !rc; pass++) {
		if (pass == 1)
			gguf_builder_begin_str_arr(b, K "merges", kept);
		for (size_t i = 0; i < n; i++) {
			json_t *m = json_array_get(merges, i);
			const char *l, *r;
			size_t ll, rl;
			if (json_is_string(m)) {
				/* `tokenizers` splits on ' ' and wants exactly two parts. */
				const char *s = json_string_value(m);
				const char *sp = strchr(s, ' ');
				if (!sp || strchr(sp + 1, ' ')) {
					rc = fail(j, -EINVAL, "model.merges[%zu] '%s' is not two tokens "
						  "separated by one space", i, quote(s, q, sizeof(q)));
					break;
				}
				l = s, ll = (size_t)(sp - s), r = sp + 1, rl = strlen(r);
			} else if (json_is_array(m) && json_array_size(m) == 2 &&
				   json_is_string(json_array_get(m, 0)) &&
				   json_is_string(json_array_get(m, 1))) {
				l = json_string_value(json_array_get(m, 0));
				r = json_string_value(json_array_get(m, 1));
				ll = strlen(l), rl = strlen(r);
			} else {
				rc = fail(j, -EINVAL, "model.merges[%zu] must be a \"a b\" string or a "
					  "pair of strings", i);
				break;
			}
			if (ll + rl + 2 > cap) {
				cap = 2 * (ll + rl + 2);
				char *nb = realloc(buf, cap);
				if (!nb) {
					rc = fail(j, -ENOMEM, "out of memory");
					break;
				}
				buf = nb;
			}
			memcpy(buf, l, ll);
			buf[ll] = '\0';
			if (pass == 0) {
				/* As `tokenizers` requires: both sides and the result are in
				 * model.vocab. */
				const char *bad = NULL;
				if (!json_object_get(j->vocab, buf))
					bad = buf;
				else if (memcpy(buf, r, rl + 1), !json_object_get(j->vocab, buf))
					bad = buf;
				else if (memcpy(buf, l, ll), memcpy(buf + ll, r, rl + 1),
					 !json_object_get(j->vocab, buf))
					bad = buf;
				if (bad) {
					rc = fail(j, -EINVAL, "model.merges[%zu]: '%s' is not in model.vocab",
						  i, quote(bad, q, sizeof(q)));
					break;
				}
				if (!memchr(l, ' ', ll) && !memchr(r, ' ', rl))
					kept++;
				continue;
			}
			if (memchr(l, ' ', ll) || memchr(r, ' ', rl))
				continue;
			buf[ll] = ' ';
			memcpy(buf + ll + 1, r, rl);
			gguf_builder_push_str(b, buf, ll + 1 + rl);
		}
	}
	free(buf);
	return rc;
}

/* ------------------------------------------------------------------------- */
/* special tokens                                                            */

/* Id of a token text: an added token first (they are what special-token
 * settings name), else model.vocab; -1 if none. */
static int32_t find_text(struct tj *j, const char *text)
{
	json_t *v = json_object_get(j->added_map, text);
	if (v)
		return (int32_t)json_integer_value(v);
	v = json_object_get(j->vocab, text);
	return v ? (int32_t)json_integer_value(v) : -1;
}

/* A TemplateProcessing "SpecialToken" name -> its single id. */
static int template_id(struct tj *j, json_t *proc, const char *name, int32_t *id)
{
	json_t *st = json_object_get(json_object_get(proc, "special_tokens"), name);
	json_t *ids = json_object_get(st, "ids");
	char q[200];
	if (!json_is_array(ids))
		return fail(j, -EINVAL, "post_processor: TemplateProcessing names the special token "
			    "'%s' but its special_tokens has no ids for it", quote(name, q, sizeof(q)));
	if (json_array_size(ids) != 1)
		return fail(j, -ENOTSUP, "post_processor: TemplateProcessing special token '%s' stands "
			    "for %zu ids (one supported)", quote(name, q, sizeof(q)), json_array_size(ids));
	uint32_t v;
	int rc = read_id(j, json_array_get(ids, 0), &v, "post_processor special_tokens id");
	if (rc)
		return rc;
	if (v >= j->n)
		return fail(j, -EINVAL, "post_processor: special token '%s' has id %u, outside the "
			    "vocabulary (%u tokens)", quote(name, q, sizeof(q)), v, j->n);
	*id = (int32_t)v;
	return 0;
}

static int read_post(struct tj *j, json_t *p, const char *where)
{
	const char *type;
	char w[64];
	int rc;

	if (!p || json_is_null(p))
		return 0;
	if ((rc = get_type(j, p, &type, where)))
		return rc;
	j->post_decides = true;
	if (strcmp(type, "ByteLevel") == 0)
		return 0;       /* offsets only */
	if (strcmp(type, "Sequence") == 0) {
		json_t *list = json_object_get(p, "processors");
		if (!json_is_array(list))
			return fail(j, -EINVAL, "%s.processors must be an array", where);
		for (size_t i = 0; i < json_array_size(list); i++) {
			snprintf(w, sizeof(w), "%s.processors[%zu]", where, i);
			if ((rc = read_post(j, json_array_get(list, i), w)))
				return rc;
		}
		return 0;
	}
	if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
		/* cls $A sep: {"sep": [text, id], "cls": [text, id]} */
		static const char *const keys[2] = { "cls", "sep" };
		int32_t *dst[2] = { &j->tmpl_first, &j->tmpl_last };
		for (int k = 0; k < 2; k++) {
			json_t *e = json_object_get(p, keys[k]);
			uint32_t v;
			snprintf(w, sizeof(w), "%s.%s", where, keys[k]);
			if (!json_is_array(e) || json_array_size(e) != 2)
				return fail(j, -EINVAL, "%s must be [text, id]", w);
			if ((rc = read_id(j, json_array_get(e, 1), &v, w)))
				return rc;
			if (v >= j->n)
				return fail(j, -EINVAL, "%s: id %u is outside the vocabulary", w, v);
			*dst[k] = (int32_t)v;
		}
		return 0;
	}
	if (strcmp(type, "TemplateProcessing") != 0)
		return fail(j, -ENOTSUP, "%s type '%s' is not supported", where, type);

	/* single: [SpecialToken]? Sequence(A) [SpecialToken]? */
	json_t *single = json_object_get(p, "single");
	if (!json_is_array(single))
		return fail(j, -EINVAL, "%s.single must be an array", where);
	size_t n = json_array_size(single), seq = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(single, i);
		if (json_is_object(json_object_get(e, "Sequence"))) {
			if (seq != SIZE_MAX)
				return fail(j, -ENOTSUP, "%s.single has two sequences", where);
			seq = i;
		} else if (!json_is_object(json_object_get(e, "SpecialToken"))) {
			return fail(j, -EINVAL, "%s.single[%zu] is neither a Sequence nor a SpecialToken",
				    where, i);
		}
	}
	if (seq == SIZE_MAX || seq > 1 || n - seq - 1 > 1)
		return fail(j, -ENOTSUP, "%s: a TemplateProcessing other than [special] $A [special] "
			    "is not supported", where);
	for (size_t i = 0; i < n; i++) {
		if (i == seq)
			continue;
		json_t *st = json_object_get(json_array_get(single, i), "SpecialToken");
		const char *name = json_string_value(json_object_get(st, "id"));
		if (!name)
			return fail(j, -EINVAL, "%s.single[%zu].SpecialToken.id must be a string", where, i);
		if ((rc = template_id(j, p, name, i < seq ? &j->tmpl_first : &j->tmpl_last)))
			return rc;
	}
	return 0;
}

/* tokenizer_config.json's <key>: a string, {"content": string} or null. */
static int config_token(struct tj *j, const char *key, int32_t *id, bool lenient)
{
	json_t *v = json_object_get(j->cfg, key);
	const char *text;
	char q[200];
	*id = -1;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_object(v))
		v = json_object_get(v, "content");
	if (!(text = json_string_value(v)))
		return fail(j, -EINVAL, "%s must be a string, {\"content\": string} or null", key);
	*id = find_text(j, text);
	if (*id < 0 && !lenient)
		return fail(j, -EINVAL, "%s '%s' is not a token", key, quote(text, q, sizeof(q)));
	return 0;
}

static int read_specials(struct tj *j)
{
	json_t *model = json_object_get(j->root, "model");
	const char *unk;
	char q[200];
	int rc;

	j->bos = j->eos = j->eot = j->unk = j->pad = j->tmpl_first = j->tmpl_last = -1;
	if ((rc = get_str(j, model, "unk_token", &unk, "model")))
		return rc;
	if (unk && (j->unk = find_text(j, unk)) < 0)
		return fail(j, -EINVAL, "model.unk_token '%s' is not a token", quote(unk, q, sizeof(q)));
	if ((rc = read_post(j, json_object_get(j->root, "post_processor"), "post_processor")))
		return rc;

	int32_t cfg_bos = -1, cfg_eos = -1;
	bool cfg_add_bos = false, cfg_add_eos = false;
	if (j->cfg) {
		set_file(j, "tokenizer_config.json");
		if ((rc = config_token(j, "bos_token", &cfg_bos, false)) ||
		    (rc = config_token(j, "eos_token", &cfg_eos, false)) ||
		    (rc = config_token(j, "pad_token", &j->pad, true)) ||
		    (rc = get_bool(j, j->cfg, "add_bos_token", false, &cfg_add_bos, "")) ||
		    (rc = get_bool(j, j->cfg, "add_eos_token", false, &cfg_add_eos, "")))
			return rc;
	}
	int32_t gen_bos = -1;
	if (j->gen) {
		set_file(j, "generation_config.json");
		json_t *e = json_object_get(j->gen, "eos_token_id");
		size_t n = json_is_array(e) ? json_array_size(e) : e && !json_is_null(e) ? 1 : 0;
		j->eog = calloc(n + 3, sizeof(*j->eog));
		if (!j->eog)
			return fail(j, -ENOMEM, "out of memory");
		for (size_t i = 0; i < n; i++) {
			json_t *x = json_is_array(e) ? json_array_get(e, i) : e;
			uint32_t v;
			char w[64];
			snprintf(w, sizeof(w), json_is_array(e) ? "eos_token_id[%zu]" : "eos_token_id", i);
			if ((rc = read_id(j, x, &v, w)))
				return rc;
			if (v >= j->n)
				return fail(j, -EINVAL, "%s = %u is outside the vocabulary (%u tokens)", w, v, j->n);
			j->eog[j->n_eog++] = v;
		}
		json_t *bv = json_object_get(j->gen, "bos_token_id");
		uint32_t v;
		if (bv && !json_is_null(bv)) {
			if ((rc = read_id(j, bv, &v, "bos_token_id")))
				return rc;
			if (v >= j->n)
				return fail(j, -EINVAL, "bos_token_id = %u is outside the vocabulary", v);
			gen_bos = (int32_t)v;
		}
	}
	set_file(j, "tokenizer.json");

	j->bos = cfg_bos >= 0 ? cfg_bos : gen_bos;
	j->eos = cfg_eos >= 0 ? cfg_eos : j->n_eog ? (int32_t)j->eog[0] : -1;
	if (j->post_decides) {
		/* What the post-processor adds is what `tokenizers` adds. */
		j->add_bos = j->tmpl_first >= 0;
		j->add_eos = j->tmpl_last >= 0;
		if (j->tmpl_first >= 0)
			j->bos = j->tmpl_first;
		if (j->tmpl_last >= 0 && j->tmpl_last != j->eos) {
			/* As convert_hf_to_gguf.py: the appended token becomes EOS,
			 * the configured one EOT. */
			j->eot = j->eos;
			j->eos = j->tmpl_last;
		}
	} else {
		j->add_bos = cfg_add_bos;
		j->add_eos = cfg_add_eos;
		set_file(j, "tokenizer_config.json");
	}
	if (j->add_bos && j->bos < 0)
		return fail(j, -EINVAL, "add_bos_token is set but there is no BOS token (bos_token)");
	if (j->add_eos && j->eos < 0)
		return fail(j, -EINVAL, "add_eos_token is set but there is no EOS token (eos_token)");
	set_file(j, "tokenizer.json");
	if (!j->eog && !(j->eog = calloc(3, sizeof(*j->eog))))
		return fail(j, -ENOMEM, "out of memory");
	return 0;
}

/* ------------------------------------------------------------------------- */
/* chat templates                                                            */

static int read_text_file(struct tj *j, const char *name, char **out, size_t *len)
{
	struct stat st;
	*out = NULL;
	set_file(j, name);
	if (stat(j->file, &st) != 0)
		return 0;
	if (!S_ISREG(st.st_mode) || st.st_size > (16 << 20))
		return fail(j, -EINVAL, "not a regular file of at most 16 MiB");
	FILE *f = fopen(j->file, "rb");
	if (!f)
		return fail(j, -EIO, "cannot open it (%s)", strerror(errno));
	*out = malloc((size_t)st.st_size + 1);
	*len = *out ? fread(*out, 1, (size_t)st.st_size, f) : 0;
	int bad = ferror(f);
	fclose(f);
	if (!*out)
		return fail(j, -ENOMEM, "out of memory");
	if (bad)
		return fail(j, -EIO, "read error");
	(*out)[*len] = '\0';
	return 0;
}

static int write_templates(struct tj *j, struct gguf_builder *b)
{
	json_t *t = j->cfg ? json_object_get(j->cfg, "chat_template") : NULL;
	json_t *alt = NULL;
	char *text = NULL;
	size_t len;
	int rc = 0;

	if (!t || json_is_null(t)) {
		/* Newer transformers save the template beside the config. */
		if ((rc = read_text_file(j, "chat_template.jinja", &text, &len)))
			goto out;
		if (text) {
			gguf_builder_set_str(b, "tokenizer.chat_template", text, len);
			goto out;
		}
		if ((rc = load_json(j, "chat_template.json", &alt, false)) || !alt)
			goto out;
		t = json_object_get(alt, "chat_template");
	} else {
		set_file(j, "tokenizer_config.json");
	}
	if (!t || json_is_null(t))
		goto out;
	if (json_is_string(t)) {
		gguf_builder_set_str(b, "tokenizer.chat_template", json_string_value(t),
				     json_string_length(t));
		goto out;
	}
	if (!json_is_array(t)) {
		rc = fail(j, -EINVAL, "chat_template must be a string or a list of {name, template}");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(t); i++) {
		json_t *e = json_array_get(t, i);
		const char *name = json_string_value(json_object_get(e, "name"));
		json_t *tmpl = json_object_get(e, "template");
		char key[256];
		if (!name || !json_is_string(tmpl) || strlen(name) > 200) {
			rc = fail(j, -EINVAL, "chat_template[%zu] must be {\"name\": string, "
				  "\"template\": string}", i);
			goto out;
		}
		if (strcmp(name, "default") == 0)
			snprintf(key, sizeof(key), "tokenizer.chat_template");
		else
			snprintf(key, sizeof(key), "tokenizer.chat_template.%s", name);
		gguf_builder_set_str(b, key, json_string_value(tmpl), json_string_length(tmpl));
	}
out:
	free(text);
	json_decref(alt);
	set_file(j, "tokenizer.json");
	return rc;
}

/* ------------------------------------------------------------------------- */

static int write_keys(struct tj *j, struct gguf_builder *b)
{
	json_t *model = json_object_get(j->root, "model");
	bool ignore_merges, fuse_unk;
	char pad[32], q[200];
	int rc;

	if ((rc = get_bool(j, model, "ignore_merges", false, &ignore_merges, "model")) ||
	    (rc = get_bool(j, model, "fuse_unk", false, &fuse_unk, "model")))
		return rc;
	if (j->byte_level) {
		gguf_builder_set_str(b, K "model", "gpt2", 4);
		gguf_builder_set_str(b, K "pre", j->pre, strlen(j->pre));
	} else {
		const char *pre = j->metaspace_split ? "smoke-metaspace" : "smoke-none";
		gguf_builder_set_str(b, K "model", "gemma4", 6);
		gguf_builder_set_str(b, K "pre", pre, strlen(pre));
	}

	/* Unused ids get "[PAD<id>]", which must not collide with a real text. */
	for (uint32_t id = 0; id < j->n; id++) {
		if (j->text[id])
			continue;
		snprintf(pad, sizeof(pad), "[PAD%u]", id);
		if (find_text(j, pad) >= 0)
			return fail(j, -EINVAL, "id %u is unused but its placeholder '%s' is a token",
				    id, quote(pad, q, sizeof(q)));
	}
	gguf_builder_begin_str_arr(b, K "tokens", j->n);
	for (uint32_t id = 0; id < j->n; id++) {
		if (j->text[id]) {
			gguf_builder_push_str(b, j->text[id], strlen(j->text[id]));
		} else {
			int n = snprintf(pad, sizeof(pad), "[PAD%u]", id);
			gguf_builder_push_str(b, pad, (size_t)n);
			j->type[id] = TT_UNUSED;
		}
	}
	gguf_builder_set_arr(b, K "token_type", GGUF_VT_I32, j->type, j->n);
	if ((rc = write_merges(j, b, json_object_get(model, "merges"))))
		return rc;

	static const char *const id_keys[5] = { K "bos_token_id", K "eos_token_id",
		K "eot_token_id", K "unknown_token_id", K "padding_token_id" };
	const int32_t ids[5] = { j->bos, j->eos, j->eot, j->unk, j->pad };
	for (int i = 0; i < 5; i++)
		if (ids[i] >= 0)
			gguf_builder_set_u32(b, id_keys[i], (uint32_t)ids[i]);
	gguf_builder_set_bool(b, K "add_bos_token", j->add_bos);
	gguf_builder_set_bool(b, K "add_eos_token", j->add_eos);

	gguf_builder_set_bool(b, S "hf", true);
	gguf_builder_set_bool(b, S "ignore_merges", ignore_merges);
	gguf_builder_set_bool(b, S "byte_fallback", j->byte_fallback);
	gguf_builder_set_bool(b, S "fuse_unk", fuse_unk);
	if (j->nfc)
		gguf_builder_set_str(b, S "normalizer", "nfc", 3);
	if (j->space_prefix)
		gguf_builder_set_str(b, S "space_prefix", j->space_prefix, strlen(j->space_prefix));
	if (j->eos >= 0)
		j->eog[j->n_eog++] = (uint32_t)j->eos;
	if (j->eot >= 0)
		j->eog[j->n_eog++] = (uint32_t)j->eot;
	if (j->n_eog)
		gguf_builder_set_arr(b, S "eog_token_ids", GGUF_VT_U32, j->eog, j->n_eog);
	if (j->n_lstrip)
		gguf_builder_set_arr(b, S "lstrip_token_ids", GGUF_VT_U32, j->lstrip, j->n_lstrip);
	if (j->n_rstrip)
		gguf_builder_set_arr(b, S "rstrip_token_ids", GGUF_VT_U32, j->rstrip, j->n_rstrip);
	return write_templates(j, b);
}

int tokenizer_json_to_gguf(struct gguf_builder *b, const char *dir, struct smk_err *err)
{
	struct tj j = { .dir = dir, .err = err };
	int rc;

	if ((rc = load_json(&j, "tokenizer.json", &j.root, true)))
		goto out;
	if ((rc = read_model(&j, json_object_get(j.root, "model"))) ||
	    (rc = read_pipeline(&j)) || (rc = read_vocab(&j)))
		goto out;
	if ((rc = load_json(&j, "tokenizer_config.json", &j.cfg, false)) ||
	    (rc = load_json(&j, "generation_config.json", &j.gen, false)))
		goto out;
	set_file(&j, "tokenizer.json");
	if ((rc = read_specials(&j)) || (rc = write_keys(&j, b)))
		goto out;
out:
	json_decref(j.root);
	json_decref(j.cfg);
	json_decref(j.gen);
	json_decref(j.added_map);
	free(j.text);
	free(j.type);
	free(j.added_id);
	free(j.lstrip);
	free(j.rstrip);
	free(j.eog);
	return rc;
}
