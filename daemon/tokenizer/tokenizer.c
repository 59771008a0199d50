/* tokenizer.c - build a tokenizer from GGUF metadata; accessors.
 *
 * GGUF keys read (all under tokenizer.ggml.):
 *   model          string  "llama" (SPM) | "gpt2" (byte-level BPE) | "gemma4"
 *                          (SPM-style BPE); others refused
 *   pre            string  BPE pre-tokenizer name (see pre_table below)
 *   tokens         string[n]  token texts (byte strings; not NUL-terminated)
 *   scores         f32[n] or integer[n], optional (SPM merge priority)
 *   token_type     integer[n], optional: 1 normal, 2 unknown, 3 control,
 *                  4 user-defined, 5 unused, 6 byte; anything else undefined
 *   merges         string[] "left right", required for BPE; index = rank
 *   bos/eos/eot/eom/unknown/padding/fim_*_token_id   integer, optional
 *   add_bos_token, add_eos_token, add_space_prefix   bool, optional
 *
 * Keys of our own, written by tokenizer_json.c when it translates a Hugging
 * Face tokenizer.json (llama.cpp does not know them; all optional):
 *   smoke.tokenizer.hf             bool: Hugging Face `tokenizers` semantics
 *                                  where they differ from llama.cpp's (see
 *                                  struct tokenizer in tokenizer_impl.h)
 *   smoke.tokenizer.normalizer     string "nfc"
 *   smoke.tokenizer.space_prefix   string "every" | "missing" | "first"
 *                                  (enum tok_prefix; BPE only)
 *   smoke.tokenizer.ignore_merges  bool, overrides the pre table's default
 *   smoke.tokenizer.byte_fallback, smoke.tokenizer.fuse_unk   bool (with hf)
 *   smoke.tokenizer.eog_token_ids  integer[]: more end-of-generation tokens
 *   smoke.tokenizer.lstrip_token_ids, smoke.tokenizer.rstrip_token_ids
 *                                  integer[]: special tokens that swallow the
 *                                  whitespace before / after them
 * and, for model "gemma4" (SPM-style BPE), pre "smoke-none" (no split) or
 * "smoke-metaspace" (a word starts at every U+2581) instead of Gemma 4's
 * newline split; for model "gpt2", pre "smoke-o200k": the o200k regex
 * (gpt-4o, gpt-oss) as tiktoken and Hugging Face run it, where llama.cpp's
 * "gpt-4o" approximates its case classes.
 *
 * Defaults and the text-based fix-ups (which tokens end generation, which are
 * forced to CONTROL) follow llama.cpp's llama_vocab::impl::load() so that our
 * token ids, EOG decisions and pieces match it.
 */
#include "tokenizer/tokenizer_impl.h"
#include "util/text.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unicode/unicode.h"

#define K "tokenizer.ggml."

/* ------------------------------------------------------------------------- */
/* vocabulary hash map                                                       */

/* The key of a vocabulary lookup: len bytes at s; entries are token ids. */
struct vocab_key {
	const struct tokenizer *t;
	const char *s;
	size_t len;
};

static bool vocab_eq(const void *key, int32_t id)
{
	const struct vocab_key *k = key;
	const struct tok_entry *e = &k->t->tok[id];
	return e->len == k->len && memcmp(k->t->arena + e->off, k->s, k->len) == 0;
}

int32_t tok_lookup(const struct tokenizer *t, const char *s, size_t len)
{
	struct vocab_key k = { t, s, len };
	return smk_hindex_find(&t->vmap, smk_fnv1a64(s, len), vocab_eq, &k);
}

/* A token's or key's exact bytes in a message: printable ASCII as is, the
 * rest \xNN, cut after 40 bytes (util/text.h). */
static const char *quote(const char *s, size_t len, char *buf, size_t cap)
{
	return smk_escape(buf, cap, s, len, 40, SMK_ESCAPE_ASCII);
}

/* ------------------------------------------------------------------------- */
/* optional metadata                                                         */

static int opt_u32(const struct gguf *g, const char *key, uint32_t *v, bool *present,
		   struct smk_err *err)
{
	*present = false;
	int rc = gguf_get_u32(g, key, v, err);
	if (rc == -ENOENT) {
		smk_err_clear(err);
		return 0;
	}
	if (rc)
		return rc;
	*present = true;
	return 0;
}

static int opt_bool(const struct gguf *g, const char *key, bool *v, struct smk_err *err)
{
	bool b;
	int rc = gguf_get_bool(g, key, &b, err);
	if (rc == -ENOENT) {
		smk_err_clear(err);
		return 0;
	}
	if (rc)
		return rc;
	*v = b;
	return 0;
}

static bool is_int_vt(enum gguf_vtype v)
{
	switch (v) {
	case GGUF_VT_U8: case GGUF_VT_I8: case GGUF_VT_U16: case GGUF_VT_I16:
	case GGUF_VT_U32: case GGUF_VT_I32: case GGUF_VT_U64: case GGUF_VT_I64:
		return true;
	default:
		return false;
	}
}

static bool str_is(const char *s, size_t len, const char *lit)
{
	return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

/* ------------------------------------------------------------------------- */
/* pre-tokenizer names (llama.cpp llama-vocab.cpp, load())                    */

struct pre_entry {
	const char *name;
	int pre;                /* enum tok_pre, or -1: known to llama.cpp, not implemented */
	bool ignore_merges;
	bool add_bos;
	bool no_bos;            /* special_bos_id = none */
};

static const struct pre_entry pre_table[] = {
	{ "default", PRE_DEFAULT, false, false, false },
	{ "llama3", PRE_LLAMA3, true, true, false },
	{ "llama-v3", PRE_LLAMA3, true, true, false },
	{ "llama-bpe", PRE_LLAMA3, true, true, false },
	{ "falcon3", PRE_LLAMA3, true, true, false },
	{ "falcon-h1", PRE_LLAMA3, true, true, false },
	{ "pixtral", PRE_LLAMA3, true, true, false },
	{ "midm-2.0", PRE_LLAMA3, true, true, false },
	{ "lfm2", PRE_LLAMA3, true, true, false },
	{ "jina-v5-nano", PRE_LLAMA3, true, true, false },
	{ "dbrx", PRE_LLAMA3, false, false, false },
	{ "smaug-bpe", PRE_LLAMA3, false, false, false },
	{ "chatglm-bpe", PRE_LLAMA3, false, false, true },
	{ "glm4", PRE_LLAMA3, true, false, true },
	{ "glm5", PRE_LLAMA3, true, false, true },
	{ "falcon", PRE_FALCON, false, false, false },
	{ "mpt", PRE_GPT2, false, false, false },
	{ "gpt-2", PRE_GPT2, false, false, false },
	{ "phi-2", PRE_GPT2, false, false, false },
	{ "jina-es", PRE_GPT2, false, false, false },
	{ "jina-de", PRE_GPT2, false, false, false },
	{ "gigachat", PRE_GPT2, false, false, false },
	{ "jina-v2-es", PRE_GPT2, false, false, false },
	{ "jina-v2-de", PRE_GPT2, false, false, false },
	{ "a.x-4.0", PRE_GPT2, false, false, false },
	{ "mellum", PRE_GPT2, false, false, false },
	{ "modern-bert", PRE_GPT2, false, false, false },
	{ "jina-v1-en", PRE_GPT2, false, false, false },
	{ "jina-v2-code", PRE_GPT2, false, false, false },
	{ "roberta-bpe", PRE_GPT2, false, false, false },
	{ "olmo", PRE_GPT2, false, false, false },
	{ "jais", PRE_GPT2, false, false, false },
	{ "exaone4", PRE_GPT2, false, false, false },
	{ "trillion", PRE_GPT2, false, false, false },
	{ "granite-docling", PRE_GPT2, false, false, false },
	{ "starcoder", PRE_STARCODER, false, false, false },
	{ "refact", PRE_STARCODER, false, false, false },
	{ "command-r", PRE_STARCODER, false, false, false },
	{ "smollm", PRE_STARCODER, false, false, false },
	{ "codeshell", PRE_STARCODER, false, false, false },
	{ "exaone", PRE_STARCODER, false, false, false },
	{ "minerva-7b", PRE_STARCODER, false, false, false },
	{ "mellum2", PRE_STARCODER, false, false, false },
	{ "qwen2", PRE_QWEN2, false, false, false },
	{ "deepseek-r1-qwen", PRE_QWEN2, false, false, false },
	{ "kormo", PRE_QWEN2, false, false, false },
	{ "f2llmv2", PRE_QWEN2, false, false, false },
	{ "megrez", PRE_QWEN2, false, false, false },
	{ "stablelm2", PRE_QWEN2, false, false, false },
	{ "hunyuan", PRE_QWEN2, false, false, false },
	{ "solar-open", PRE_QWEN2, false, false, false },
	{ "grok-2", PRE_QWEN2, false, false, false },
	{ "qwen35", PRE_QWEN35, false, false, false },
	/* One regex, no flags (llama.cpp: LLAMA_VOCAB_PRE_TYPE_GPT4O and _MINIMAX_M2). */
	{ "gpt-4o", PRE_GPT4O, false, false, false },
	{ "llama4", PRE_GPT4O, false, false, false },
	{ "kanana2", PRE_GPT4O, false, false, false },
	{ "talkie", PRE_GPT4O, false, false, false },
	{ "minimax-m2", PRE_GPT4O, false, false, false },
	/* smoke's own: the o200k regex exactly (Hugging Face's gpt-oss / gpt-4o
	 * tokenizer.json; tokenizer_json.c writes it). */
	{ "smoke-o200k", PRE_O200K, false, false, false },
	/* Known to llama.cpp with regexes we do not implement: refuse them rather
	 * than tokenise differently. */
	{ "minicpm5", -1, false, false, false },
	{ "deepseek-llm", -1, false, false, false },
	{ "deepseek-coder", -1, false, false, false },
	{ "deepseek-v3", -1, false, false, false },
	{ "spark2_5", -1, false, false, false },
	{ "youtu", -1, false, false, false },
	{ "jais-2", -1, false, false, false },
	{ "gemma4", PRE_GEMMA4, false, false, false },
	{ "granite-embed-multi-311m", PRE_GEMMA4, false, false, false },
	{ "sarvam-moe", PRE_GEMMA4, false, false, false },
	{ "whitespace", -1, false, false, false },
	{ "poro-chat", -1, false, false, false },
	{ "viking", -1, false, false, false },
	{ "tekken", -1, false, false, false },
	{ "bloom", -1, false, false, false },
	{ "gpt3-finnish", -1, false, false, false },
	{ "exaone-moe", -1, false, false, false },
	{ "chameleon", -1, false, false, false },
	{ "granite-embed-multi-97m", -1, false, false, false },
	{ "tiny_aya", -1, false, false, false },
	{ "cohere2moe", -1, false, false, false },
	{ "superbpe", -1, false, false, false },
	{ "bailingmoe", -1, false, false, false },
	{ "bailingmoe2", -1, false, false, false },
	{ "llada-moe", -1, false, false, false },
	{ "seed-coder", -1, false, false, false },
	{ "hunyuan-dense", -1, false, false, false },
	{ "hy_v4", -1, false, false, false },
	{ "joyai-llm", -1, false, false, false },
	{ "kimi-k2", -1, false, false, false },
	{ "ufakzeka", -1, false, false, false },
	{ "afmoe", -1, false, false, false },
	{ "laguna", -1, false, false, false },
};

/* ------------------------------------------------------------------------- */
/* loading: vocabulary                                                       */

static int load_vocab(struct tokenizer *t, const struct gguf *g, struct smk_err *err)
{
	const char *path = gguf_path(g);
	struct gguf_arr toks, scores, types;
	bool has_scores = false, has_types = false;
	char q[200];
	int rc;

	if ((rc = gguf_get_arr(g, K "tokens", &toks, err)))
		return rc;
	if (toks.elem != GGUF_VT_STRING)
		return smk_fail(err, -EINVAL, "%s: " K "tokens is not a string array", path);
	if (toks.n == 0 || toks.n >= (uint64_t)INT32_MAX / 2)
		return smk_fail(err, -EINVAL, "%s: " K "tokens has %llu entries (need 1..%d)",
				path, (unsigned long long)toks.n, INT32_MAX / 2 - 1);
	const uint32_t n = (uint32_t)toks.n;

	rc = gguf_get_arr(g, K "scores", &scores, err);
	if (rc == 0) {
		if (!is_int_vt(scores.elem) && scores.elem != GGUF_VT_F32 &&
		    scores.elem != GGUF_VT_F64)
			return smk_fail(err, -EINVAL, "%s: " K "scores is not a numeric array", path);
		if (scores.n != n)
			return smk_fail(err, -EINVAL, "%s: " K "scores has %llu entries but "
					K "tokens has %u", path, (unsigned long long)scores.n, n);
		has_scores = true;
	} else if (rc != -ENOENT) {
		return rc;
	}
	rc = gguf_get_arr(g, K "token_type", &types, err);
	if (rc == 0) {
		if (!is_int_vt(types.elem))
			return smk_fail(err, -EINVAL, "%s: " K "token_type is not an integer array", path);
		if (types.n != n)
			return smk_fail(err, -EINVAL, "%s: " K "token_type has %llu entries but "
					K "tokens has %u", path, (unsigned long long)types.n, n);
		has_types = true;
	} else if (rc != -ENOENT) {
		return rc;
	}
	smk_err_clear(err);

	/* Pass 1: arena size (an empty text becomes "[EMPTY_<id>]", as in llama.cpp). */
	uint64_t total = 0;
	for (uint32_t i = 0; i < n; i++) {
		const char *s;
		size_t len;
		if (gguf_arr_str(&toks, i, &s, &len))
			return smk_fail(err, -EINVAL, "%s: " K "tokens[%u] unreadable", path, i);
		total += len ? len : 20;
	}
	if (total >= UINT32_MAX)
		return smk_fail(err, -EINVAL, "%s: " K "tokens hold %llu bytes of text (max 4 GiB)",
				path, (unsigned long long)total);

	t->n_vocab = (int32_t)n;
	t->arena = malloc(total + 1);
	t->tok = calloc(n, sizeof(*t->tok));
	if (!t->arena || !t->tok || smk_hindex_init(&t->vmap, n))
		return smk_fail(err, -ENOMEM, "%s: out of memory for %u tokens", path, n);

	uint32_t off = 0;
	for (uint32_t i = 0; i < n; i++) {
		const char *s;
		size_t len;
		gguf_arr_str(&toks, i, &s, &len);
		struct tok_entry *e = &t->tok[i];
		e->off = off;
		if (len) {
			memcpy(t->arena + off, s, len);
			e->len = (uint32_t)len;
		} else {
			e->len = (uint32_t)snprintf(t->arena + off, 21, "[EMPTY_%u]", i);
		}
		off += e->len;

		if (has_scores) {
			float f;
			int64_t v;
			if (gguf_arr_f32(&scores, i, &f) == 0)
				e->score = f;
			else if (gguf_arr_i64(&scores, i, &v) == 0)
				e->score = (float)v;
			else
				return smk_fail(err, -EINVAL, "%s: " K "scores[%u] is not a finite number",
						path, i);
		}
		e->attr = TA_NORMAL;    /* llama.cpp's default without token_type */
		if (has_types) {
			int64_t ty;
			if (gguf_arr_i64(&types, i, &ty))
				return smk_fail(err, -EINVAL, "%s: " K "token_type[%u] unreadable", path, i);
			switch (ty) {
			case 1: e->attr = TA_NORMAL; break;
			case 2: e->attr = TA_UNKNOWN; break;
			case 3: e->attr = TA_CONTROL; break;
			case 4: e->attr = TA_USER_DEFINED; break;
			case 5: e->attr = TA_UNUSED; break;
			case 6: e->attr = TA_BYTE; break;
			default: e->attr = 0; break;    /* undefined: renders as nothing */
			}
		}
		if (e->attr & TA_BYTE) {
			/* <0xXX>; anything else is treated as text when rendered. */
			const char *x = t->arena + e->off;
			if (e->len == 6 && memcmp(x, "<0x", 3) == 0 && x[5] == '>' &&
			    isxdigit((unsigned char)x[3]) && isxdigit((unsigned char)x[4])) {
				char hx[3] = { x[3], x[4], 0 };
				e->byte = (uint8_t)strtoul(hx, NULL, 16);
				e->attr |= TA_BYTE_OK;
			}
		}

		/* Insert; a duplicate text would make ids ambiguous (llama.cpp aborts). */
		struct vocab_key k = { t, t->arena + e->off, e->len };
		int32_t first = smk_hindex_put(&t->vmap, smk_fnv1a64(k.s, k.len), vocab_eq, &k,
					       (int32_t)i);
		if (first != (int32_t)i)
			return smk_fail(err, -EINVAL, "%s: " K "tokens[%d] and [%u] are both '%s'",
					path, first, i, quote(k.s, k.len, q, sizeof(q)));
	}
	return 0;
}

/* ------------------------------------------------------------------------- */
/* loading: special ids, flags, text-based fix-ups                            */

static int read_id(struct tokenizer *t, const struct gguf *g, const char *key, int32_t *id,
		   struct smk_err *err)
{
	uint32_t v;
	bool present;
	int rc = opt_u32(g, key, &v, &present, err);
	if (rc)
		return rc;
	if (!present)
		return 0;
	if (v >= (uint32_t)t->n_vocab)
		return smk_fail(err, -EINVAL, "%s: %s = %u is out of range (vocabulary has %d tokens)",
				gguf_path(g), key, v, t->n_vocab);
	*id = (int32_t)v;
	return 0;
}

/* With Hugging Face semantics only added tokens (CONTROL, USER_DEFINED) count
 * as special: a vocabulary entry that merely reads "</s>" stays text. */
static bool hf_special(const struct tokenizer *t, int32_t id)
{
	return !t->hf || (t->tok[id].attr & (TA_CONTROL | TA_USER_DEFINED));
}

static int32_t find_any(const struct tokenizer *t, const char *const *texts)
{
	/* First match in id order (llama.cpp walks a hash map, so its order is
	 * unspecified; vocabularies hold at most one of each list in practice). */
	int32_t best = -1;
	for (; *texts; texts++) {
		int32_t id = tok_lookup(t, *texts, strlen(*texts));
		if (id >= 0 && hf_special(t, id) && (best < 0 || id < best))
			best = id;
	}
	return best;
}

/* llama.cpp forces tokens it recognises by text to CONTROL; Hugging Face
 * tokenizers take the types as given. */
static void force_control(struct tokenizer *t, int32_t id)
{
	if (!t->hf)
		t->tok[id].attr |= TA_CONTROL;
}

/* Drop a text-based end-of-generation mark: llama.cpp retypes the token,
 * with Hugging Face semantics only the mark goes. */
static void unmark_eog(struct tokenizer *t, int32_t id, uint16_t llama_attr)
{
	if (t->hf)
		t->tok[id].attr &= (uint16_t)~TA_EOG;
	else
		t->tok[id].attr = llama_attr;
}

/* smoke.tokenizer.<key>: an integer array of token ids; each gets attr. */
static int mark_ids(struct tokenizer *t, const struct gguf *g, const char *key, uint16_t attr,
		    struct smk_err *err)
{
	struct gguf_arr a;
	int rc = gguf_get_arr(g, key, &a, err);
	if (rc == -ENOENT) {
		smk_err_clear(err);
		return 0;
	}
	if (rc)
		return rc;
	if (!is_int_vt(a.elem))
		return smk_fail(err, -EINVAL, "%s: %s is not an integer array", gguf_path(g), key);
	for (uint64_t i = 0; i < a.n; i++) {
		int64_t v;
		if (gguf_arr_i64(&a, i, &v) || v < 0 || v >= t->n_vocab)
			return smk_fail(err, -EINVAL, "%s: %s[%llu] is not a token id (vocabulary has "
					"%d tokens)", gguf_path(g), key, (unsigned long long)i,
					t->n_vocab);
		t->tok[v].attr |= attr;
	}
	return 0;
}

static const char *const eot_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
	"<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
	"<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
	"<end_of_utterance>", NULL };
static const char *const eom_texts[] = { "<|eom_id|>", NULL };
static const char *const fim_pre_texts[] = {
	"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
	"<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>",
	"\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL };
static const char *const fim_suf_texts[] = {
	"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
	"<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>", "<SUF>",
	"\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL };
static const char *const fim_mid_texts[] = {
	"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
	"<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>",
	"\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL };
static const char *const fim_pad_texts[] = {
	"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL };
static const char *const fim_rep_texts[] = {
	"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL };
static const char *const fim_sep_texts[] = { "<|file_sep|>", NULL };
/* Texts that end generation whatever the metadata says. */
static const char *const eog_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
	"<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
	"_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
	"<turn|>", "<|tool_response>",
	"<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "[e~[", NULL };

static void set_eog(struct tokenizer *t, int32_t id)
{
	if (id >= 0 && id < t->n_vocab)
		t->tok[id].attr |= TA_EOG;
}

static int32_t find_eog_text(const struct tokenizer *t, const char *lit)
{
	int32_t id = tok_lookup(t, lit, strlen(lit));
	return id >= 0 && (t->tok[id].attr & TA_EOG) ? id : -1;
}

static int load_specials(struct tokenizer *t, const struct gguf *g, struct smk_err *err)
{
	int32_t fim_ids[6] = { -1, -1, -1, -1, -1, -1 };
	int32_t sep = -1, mask = -1;
	static const char *const fim_keys[6] = {
		K "fim_pre_token_id", K "fim_suf_token_id", K "fim_mid_token_id",
		K "fim_pad_token_id", K "fim_rep_token_id", K "fim_sep_token_id" };
	static const char *const *const fim_lists[6] = {
		fim_pre_texts, fim_suf_texts, fim_mid_texts, fim_pad_texts, fim_rep_texts,
		fim_sep_texts };
	int rc;

	/* Defaults that do not fit the vocabulary are disabled, not errors. */
	int32_t *defaults[] = { &t->bos, &t->eos, &t->unk, &t->pad };
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (*defaults[i] >= t->n_vocab)
			*defaults[i] = -1;

	if ((rc = read_id(t, g, K "bos_token_id", &t->bos, err)) ||
	    (rc = read_id(t, g, K "eos_token_id", &t->eos, err)) ||
	    (rc = read_id(t, g, K "eot_token_id", &t->eot, err)) ||
	    (rc = read_id(t, g, K "eom_token_id", &t->eom, err)) ||
	    (rc = read_id(t, g, K "unknown_token_id", &t->unk, err)) ||
	    (rc = read_id(t, g, K "padding_token_id", &t->pad, err)) ||
	    (rc = read_id(t, g, K "seperator_token_id", &sep, err)) ||
	    (rc = read_id(t, g, K "mask_token_id", &mask, err)) ||
	    (rc = read_id(t, g, K "prefix_token_id", &fim_ids[0], err)) ||
	    (rc = read_id(t, g, K "suffix_token_id", &fim_ids[1], err)) ||
	    (rc = read_id(t, g, K "middle_token_id", &fim_ids[2], err)))
		return rc;
	for (int i = 0; i < 6; i++)
		if ((rc = read_id(t, g, fim_keys[i], &fim_ids[i], err)))
			return rc;

	if ((rc = opt_bool(g, K "add_bos_token", &t->add_bos, err)) ||
	    (rc = opt_bool(g, K "add_eos_token", &t->add_eos, err)) ||
	    (rc = opt_bool(g, K "add_space_prefix", &t->add_space_prefix, err)))
		return rc;
	if (t->pre == PRE_GEMMA4)
		t->add_bos = true;      /* llama.cpp overrides it for Gemma 4 */
	if (t->add_bos && t->bos < 0)
		return smk_fail(err, -EINVAL, "%s: " K "add_bos_token is set but there is no BOS token",
				gguf_path(g));
	if (t->add_eos && t->eos < 0)
		return smk_fail(err, -EINVAL, "%s: " K "add_eos_token is set but there is no EOS token",
				gguf_path(g));

	/* Recognise EOT/EOM/FIM tokens by text when the metadata does not name
	 * them; the one found is forced to CONTROL. */
	if (t->eot < 0 && (t->eot = find_any(t, eot_texts)) >= 0)
		force_control(t, t->eot);
	if (t->eom < 0 && (t->eom = find_any(t, eom_texts)) >= 0)
		force_control(t, t->eom);
	for (int i = 0; i < 6; i++)
		if (fim_ids[i] < 0 && (fim_ids[i] = find_any(t, fim_lists[i])) >= 0)
			force_control(t, fim_ids[i]);

	/* End-of-generation set: FIM pad/repo/file-sep, the known texts (forced to
	 * CONTROL), then EOS/EOT/EOM. */
	for (int i = 3; i < 6; i++)
		set_eog(t, fim_ids[i]);
	for (const char *const *p = eog_texts; *p; p++) {
		int32_t id = tok_lookup(t, *p, strlen(*p));
		if (id >= 0 && hf_special(t, id)) {
			t->tok[id].attr |= TA_EOG;
			force_control(t, id);
		}
	}
	/* gpt-oss renders these channel markers, so they are plain user-defined. */
	static const char *const oss[] = { "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>" };
	for (size_t i = 0; i < 4 && !t->hf; i++) {
		int32_t id = tok_lookup(t, oss[i], strlen(oss[i]));
		if (id >= 0)
			t->tok[id].attr = TA_USER_DEFINED | (t->tok[id].attr & TA_EOG);
	}
	set_eog(t, t->eos);
	set_eog(t, t->eot);
	set_eog(t, t->eom);
	if ((rc = mark_ids(t, g, "smoke.tokenizer.eog_token_ids", TA_EOG, err)) ||
	    (rc = mark_ids(t, g, "smoke.tokenizer.lstrip_token_ids", TA_LSTRIP, err)) ||
	    (rc = mark_ids(t, g, "smoke.tokenizer.rstrip_token_ids", TA_RSTRIP, err)))
		return rc;
	/* o200k_harmony / solar-open: <|end|> is not an end of generation there. */
	int32_t end_id = find_eog_text(t, "<|end|>");
	bool has_return = find_eog_text(t, "<|return|>") >= 0;
	bool has_call = find_eog_text(t, "<|call|>") >= 0 || find_eog_text(t, "<|calls|>") >= 0;
	bool has_flush = find_eog_text(t, "<|flush|>") >= 0;
	if (end_id >= 0 && has_call && (has_return || has_flush))
		unmark_eog(t, end_id, TA_USER_DEFINED);
	/* gemma4 / plamo: </s> is a normal token. */
	int32_t s_id = find_eog_text(t, "</s>");
	if (s_id >= 0 && (find_eog_text(t, "<|tool_response>") >= 0 ||
			  find_eog_text(t, "<|plamo:eos|>") >= 0))
		unmark_eog(t, s_id, TA_NORMAL);
	return 0;
}

/* Per-model strip attributes that llama.cpp sets by name (Phi-3's special
 * tokens eat the whitespace after them; some BERT-likes' <mask> the space before). */
static void load_strip_attrs(struct tokenizer *t, const struct gguf *g, const char *pre,
			     size_t pre_len)
{
	char name[128] = "";
	const char *s;
	size_t len;
	if (gguf_get_str(g, "general.name", &s, &len, NULL) == 0) {
		if (len >= sizeof(name))
			len = sizeof(name) - 1;
		for (size_t i = 0; i < len; i++)
			name[i] = (char)tolower((unsigned char)s[i]);
		name[len] = '\0';
	}
	char prebuf[64] = "";
	if (pre_len < sizeof(prebuf)) {
		memcpy(prebuf, pre, pre_len);
		prebuf[pre_len] = '\0';
	}
	if (strstr(prebuf, "jina-v2-de") || strstr(prebuf, "jina-v2-es") ||
	    strstr(prebuf, "jina-v2-code")) {
		int32_t id = tok_lookup(t, "<mask>", 6);
		if (id >= 0)
			t->tok[id].attr |= TA_LSTRIP;
	} else if (strstr(name, "phi-3") || strstr(name, "phi3")) {
		for (int32_t id = 0; id < t->n_vocab; id++)
			if (t->tok[id].attr & (TA_CONTROL | TA_USER_DEFINED | TA_UNKNOWN))
				t->tok[id].attr |= TA_RSTRIP;
		int32_t id = tok_lookup(t, "</s>", 4);
		if (id >= 0)
			t->tok[id].attr |= TA_RSTRIP;
		static const char *const keep[] = { "<unk>", "<s>", "<|endoftext|>" };
		for (int i = 0; i < 3; i++)
			if ((id = tok_lookup(t, keep[i], strlen(keep[i]))) >= 0)
				t->tok[id].attr &= (uint16_t)~TA_RSTRIP;
	} else if (strstr(name, "modern-bert")) {
		int32_t id = tok_lookup(t, "[MASK]", 6);
		if (id >= 0)
			t->tok[id].attr |= TA_LSTRIP;
	}
}

/* ------------------------------------------------------------------------- */
/* special-token trie                                                        */

struct spec_sort {
	uint32_t len;
	int32_t id;
};

static int spec_cmp(const void *a, const void *b)
{
	const struct spec_sort *x = a, *y = b;
	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

struct tmp_node {
	uint32_t first, next;   /* child list sorted by byte; 0 = none (0 is the root) */
	int32_t special;
	uint8_t byte;
};

static int build_trie(struct tokenizer *t, struct smk_err *err)
{
	uint32_t n = 0;
	uint64_t bytes = 0;
	for (int32_t id = 0; id < t->n_vocab; id++)
		if (t->tok[id].attr & (TA_CONTROL | TA_USER_DEFINED | TA_UNKNOWN)) {
			n++;
			bytes += t->tok[id].len;
		}
	struct spec_sort *ss = malloc(sizeof(*ss) * (n ? n : 1));
	t->special = malloc(sizeof(*t->special) * (n ? n : 1));
	struct tmp_node *tn = calloc(bytes + 1, sizeof(*tn));
	t->trie = calloc(bytes + 1, sizeof(*t->trie));
	if (!ss || !t->special || !tn || !t->trie) {
		free(ss);
		free(tn);
		return smk_fail(err, -ENOMEM, "out of memory for %u special tokens", n);
	}
	uint32_t k = 0;
	for (int32_t id = 0; id < t->n_vocab; id++)
		if (t->tok[id].attr & (TA_CONTROL | TA_USER_DEFINED | TA_UNKNOWN))
			ss[k++] = (struct spec_sort){ t->tok[id].len, id };
	/* llama.cpp sorts by length only (unstable); ties by id make ours stable. */
	qsort(ss, n, sizeof(*ss), spec_cmp);

	uint32_t nn = 1;
	tn[0].special = -1;
	for (uint32_t i = 0; i < n; i++) {
		t->special[i] = ss[i].id;
		const struct tok_entry *e = &t->tok[ss[i].id];
		const unsigned char *s = (const unsigned char *)t->arena + e->off;
		uint32_t cur = 0;
		for (uint32_t j = 0; j < e->len; j++) {
			uint32_t *link = &tn[cur].first;
			while (*link && tn[*link].byte < s[j])
				link = &tn[*link].next;
			if (!*link || tn[*link].byte != s[j]) {
				tn[nn] = (struct tmp_node){ 0, *link, -1, s[j] };
				*link = nn++;
			}
			cur = *link;
		}
		tn[cur].special = (int32_t)i;
	}
	t->n_special = n;

	/* Breadth-first renumbering: children become contiguous and stay sorted. */
	free(ss);
	uint32_t *order = malloc(sizeof(*order) * nn);
	if (!order) {
		free(tn);
		return smk_fail(err, -ENOMEM, "out of memory for the special-token trie");
	}
	uint32_t head = 0, tail = 1;
	order[0] = 0;
	while (head < tail) {
		uint32_t old = order[head];
		struct tok_trie_node *dst = &t->trie[head];
		head++;
		dst->byte = tn[old].byte;
		dst->special = tn[old].special;
		dst->child = tail;
		dst->n_child = 0;
		for (uint32_t c = tn[old].first; c; c = tn[c].next) {
			order[tail++] = c;
			dst->n_child++;
		}
	}
	t->n_trie = nn;
	free(order);
	free(tn);
	return 0;
}

/* ------------------------------------------------------------------------- */

/* The smoke.tokenizer.* keys (see the top of this file). */
static int load_smoke_keys(struct tokenizer *t, const struct gguf *g, struct smk_err *err)
{
	const char *path = gguf_path(g);
	const char *s;
	size_t len;
	char q[200];
	int rc;

	if ((rc = opt_bool(g, "smoke.tokenizer.hf", &t->hf, err)) ||
	    (rc = opt_bool(g, "smoke.tokenizer.ignore_merges", &t->ignore_merges, err)) ||
	    (rc = opt_bool(g, "smoke.tokenizer.byte_fallback", &t->byte_fallback, err)) ||
	    (rc = opt_bool(g, "smoke.tokenizer.fuse_unk", &t->fuse_unk, err)))
		return rc;
	if (t->hf)
		t->bos = t->eos = t->unk = t->pad = -1;

	rc = gguf_get_str(g, "smoke.tokenizer.normalizer", &s, &len, err);
	if (rc == 0) {
		if (!str_is(s, len, "nfc"))
			return smk_fail(err, -ENOTSUP, "%s: smoke.tokenizer.normalizer '%s' is not "
					"supported (supported: 'nfc')", path, quote(s, len, q, sizeof(q)));
		t->nfc = true;
	} else if (rc != -ENOENT) {
		return rc;
	}
	rc = gguf_get_str(g, "smoke.tokenizer.space_prefix", &s, &len, err);
	if (rc == 0) {
		if (t->kind != TOK_BPE)
			return smk_fail(err, -EINVAL, "%s: smoke.tokenizer.space_prefix is for BPE "
					"tokenizers (SentencePiece has " K "add_space_prefix)", path);
		if (str_is(s, len, "every"))
			t->prefix = PREFIX_EVERY;
		else if (str_is(s, len, "missing"))
			t->prefix = PREFIX_MISSING;
		else if (str_is(s, len, "first"))
			t->prefix = PREFIX_FIRST;
		else
			return smk_fail(err, -ENOTSUP, "%s: smoke.tokenizer.space_prefix '%s' is not "
					"supported (supported: 'every', 'missing', 'first')", path,
					quote(s, len, q, sizeof(q)));
	} else if (rc != -ENOENT) {
		return rc;
	}
	smk_err_clear(err);
	return 0;
}

static const char *const unsupported_models[] = {
	"bert", "t5", "rwkv", "plamo2", "hybriddna", "whitespace", "test",
	"no_vocab", "none", NULL };

int tokenizer_load_gguf(struct tokenizer **out, const struct gguf *g, struct smk_err *err)
{
	const char *path = gguf_path(g);
	const char *model, *pre = "";
	size_t model_len, pre_len = 0;
	char q[200];
	int rc;

	*out = NULL;
	if ((rc = gguf_get_str(g, K "model", &model, &model_len, err)))
		return rc == -ENOENT ? smk_fail(err, -ENOENT, "%s: no " K "model: the file has no "
						"tokenizer", path) : rc;
	rc = gguf_get_str(g, K "pre", &pre, &pre_len, err);
	if (rc && rc != -ENOENT)
		return rc;
	smk_err_clear(err);

	struct tokenizer *t = calloc(1, sizeof(*t));
	if (!t)
		return smk_fail(err, -ENOMEM, "out of memory");
	t->eot = t->eom = -1;
	const struct pre_entry *pe = NULL;
	if (str_is(model, model_len, "llama")) {
		t->kind = TOK_SPM;
		strcpy(t->model, "llama");
		t->bos = 1, t->eos = 2, t->unk = 0, t->pad = -1;
		t->add_bos = true, t->add_space_prefix = true;
	} else if (str_is(model, model_len, "gpt2")) {
		t->kind = TOK_BPE;
		strcpy(t->model, "gpt2");
		t->bos = 11, t->eos = 11, t->unk = -1, t->pad = -1;
		t->pre = PRE_DEFAULT;   /* also for a missing or unknown pre */
		for (size_t i = 0; i < sizeof(pre_table) / sizeof(pre_table[0]); i++)
			if (str_is(pre, pre_len, pre_table[i].name))
				pe = &pre_table[i];
		if (pe && pe->pre < 0) {
			rc = smk_fail(err, -ENOTSUP, "%s: " K "pre '%s' is not supported (its "
				      "pre-tokenizer regexes are not implemented)", path,
				      quote(pre, pre_len, q, sizeof(q)));
			goto fail;
		}
		if (pe) {
			t->pre = (enum tok_pre)pe->pre;
			t->ignore_merges = pe->ignore_merges;
			t->add_bos = pe->add_bos;
			if (pe->no_bos)
				t->bos = -1;
		}
	} else if (str_is(model, model_len, "gemma4")) {
		/* SPM-style BPE; its special ids come from the metadata only. */
		t->kind = TOK_BPE;
		strcpy(t->model, "gemma4");
		t->pre = PRE_GEMMA4;
		t->bos = t->eos = t->unk = t->pad = -1;
		if (str_is(pre, pre_len, "smoke-none")) {
			t->pre = PRE_NONE;
		} else if (str_is(pre, pre_len, "smoke-metaspace")) {
			t->pre = PRE_METASPACE;
		} else if (pre_len && !str_is(pre, pre_len, "gemma4")) {
			rc = smk_fail(err, -ENOTSUP, "%s: " K "pre '%s' is not supported with "
				      K "model 'gemma4' (supported: 'gemma4', 'smoke-none', "
				      "'smoke-metaspace')", path, quote(pre, pre_len, q, sizeof(q)));
			goto fail;
		}
	} else {
		const char *what = "unknown";
		for (const char *const *u = unsupported_models; *u; u++)
			if (str_is(model, model_len, *u))
				what = "unsupported";
		rc = smk_fail(err, -ENOTSUP, "%s: " K "model '%s' is %s (supported: 'llama' = "
			      "SentencePiece BPE, 'gpt2' = byte-level BPE, 'gemma4')", path,
			      quote(model, model_len, q, sizeof(q)), what);
		goto fail;
	}

	t->escape_ws = t->pre == PRE_GEMMA4 || t->pre == PRE_NONE || t->pre == PRE_METASPACE;
	if ((rc = load_smoke_keys(t, g, err)))
		goto fail;
	if ((rc = load_vocab(t, g, err)) || (rc = load_specials(t, g, err)))
		goto fail;
	if (!t->hf)
		load_strip_attrs(t, g, pre, pre_len);
	if ((rc = build_trie(t, err)))
		goto fail;

	/* Byte fallback tokens: SPM tries <0xXX>, then the byte itself as a token
	 * (llama.cpp byte_to_token); SPM-style BPE only <0xXX>. */
	for (int b = 0; b < 256; b++) {
		char hx[7];
		snprintf(hx, sizeof(hx), "<0x%02X>", b);
		int32_t id = tok_lookup(t, hx, 6);
		if (id < 0 && t->kind == TOK_SPM) {
			char c = (char)b;
			id = tok_lookup(t, &c, 1);
		}
		t->byte_tok[b] = id;
	}
	if (t->kind == TOK_BPE && (rc = tok_bpe_load(t, g, err)))
		goto fail;

	for (int32_t id = 0; id < t->n_vocab; id++) {
		size_t n = tokenizer_piece(t, id, true, NULL, 0);
		if (n > t->max_piece)
			t->max_piece = n;
	}
	*out = t;
	return 0;
fail:
	tokenizer_free(t);
	return rc;
}

void tokenizer_free(struct tokenizer *t)
{
	if (!t)
		return;
	free(t->arena);
	free(t->tok);
	smk_hindex_deinit(&t->vmap);
	free(t->special);
	free(t->trie);
	tok_bpe_free(t);
	free(t);
}

int32_t tokenizer_n_vocab(const struct tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_bos(const struct tokenizer *t) { return t->bos; }
int32_t tokenizer_eos(const struct tokenizer *t) { return t->eos; }
int32_t tokenizer_eot(const struct tokenizer *t) { return t->eot; }
int32_t tokenizer_unk(const struct tokenizer *t) { return t->unk; }
int32_t tokenizer_pad(const struct tokenizer *t) { return t->pad; }
bool tokenizer_add_bos(const struct tokenizer *t) { return t->add_bos; }
bool tokenizer_add_eos(const struct tokenizer *t) { return t->add_eos; }
const char *tokenizer_model(const struct tokenizer *t) { return t->model; }
size_t tokenizer_max_piece(const struct tokenizer *t) { return t->max_piece; }

bool tokenizer_is_eog(const struct tokenizer *t, int32_t id)
{
	return id >= 0 && id < t->n_vocab && (t->tok[id].attr & TA_EOG);
}

bool tokenizer_is_control(const struct tokenizer *t, int32_t id)
{
	return id >= 0 && id < t->n_vocab && (t->tok[id].attr & TA_CONTROL);
}

int32_t tokenizer_find(const struct tokenizer *t, const char *text, size_t len)
{
	return tok_lookup(t, text, len);
}

const char *tokenizer_text(const struct tokenizer *t, int32_t id, size_t *len)
{
	if (id < 0 || id >= t->n_vocab)
		return NULL;
	*len = t->tok[id].len;
	return t->arena + t->tok[id].off;
}
