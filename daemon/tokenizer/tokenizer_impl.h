/* tokenizer_impl.h - private to daemon/tokenizer/tokenizer*.c.
 *
 * tokenizer.c         load from GGUF (validation, hash maps, special tokens),
 *                     accessors
 * tokenizer_encode.c  encode(): special-token pre-split, SPM, dispatch
 * tokenizer_bpe.c     byte-level BPE: pre-tokenizer splitters and merges
 * tokenizer_piece.c   ids back to bytes: pieces, streaming detokeniser
 */
#ifndef SMK_TOKENIZER_TOKENIZER_IMPL_H
#define SMK_TOKENIZER_TOKENIZER_IMPL_H

#include "tokenizer/tokenizer.h"
#include "util/hashtab.h"

enum tok_kind { TOK_SPM, TOK_BPE };

/* Pre-tokenizers, each a fixed pipeline of splitters (tokenizer_bpe.c) that
 * mirrors the regex list llama.cpp uses for that tokenizer.ggml.pre value. */
enum tok_pre {
	PRE_DEFAULT,    /* [\p{P}$+<=>^~|]+ ; gpt2 ; \p{N}+ ; [0-9][0-9][0-9] */
	PRE_GPT2,       /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) */
	PRE_LLAMA3,     /* (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
	PRE_QWEN2,      /* llama3 with \p{N} instead of \p{N}{1,3} */
	PRE_QWEN35,     /* qwen2 with [\p{L}\p{M}] for letters */
	PRE_STARCODER,  /* \p{N} ; gpt2 */
	PRE_FALCON,     /* [\p{P}$+<=>^~|`]+ ; gpt2 ; [0-9][0-9][0-9] */
	PRE_GPT4O,      /* o200k: letters split at case changes (llama.cpp's std::regex
			 * rewrite on collapsed text, see tokenizer_bpe.c) */
	PRE_O200K,      /* the same regex as tiktoken / Hugging Face run it: real
			 * Unicode case classes (pre "smoke-o200k", from tokenizer.json) */
	PRE_GEMMA4,     /* [^\n]+|[\n]+ on U+2581-escaped text, no GPT-2 byte map */
	PRE_NONE,       /* no split (SPM-style BPE from a tokenizer.json without
			 * a pre-tokenizer: Llama 2's Replace/Prepend normaliser) */
	PRE_METASPACE,  /* a word starts at every U+2581 (HF Metaspace, split=true) */
};

/* Where a BPE fragment gets a leading space (before U+2581 escaping), as the
 * Hugging Face pipelines do it (smoke.tokenizer.space_prefix). */
enum tok_prefix {
	PREFIX_NONE,
	PREFIX_EVERY,   /* every fragment (Prepend normaliser) */
	PREFIX_MISSING, /* every fragment not starting with a space (ByteLevel
			 * add_prefix_space; Metaspace prepend_scheme "always") */
	PREFIX_FIRST,   /* only a fragment at offset 0 not starting with a space
			 * (Metaspace prepend_scheme "first") */
};

/* Token attributes: llama.cpp's llama_token_attr bits, plus our EOG mark. */
enum {
	TA_UNKNOWN = 1 << 0,
	TA_UNUSED = 1 << 1,
	TA_NORMAL = 1 << 2,
	TA_CONTROL = 1 << 3,
	TA_USER_DEFINED = 1 << 4,
	TA_BYTE = 1 << 5,
	TA_LSTRIP = 1 << 7,
	TA_RSTRIP = 1 << 8,
	TA_EOG = 1 << 12,
	TA_BYTE_OK = 1 << 13,   /* BYTE token whose text is a well-formed <0xXX> */
};

struct tok_entry {
	uint32_t off;           /* text = arena[off .. off+len) */
	uint32_t len;
	float score;
	uint16_t attr;
	uint8_t byte;           /* value of a TA_BYTE_OK token */
};

/* Special-token trie, breadth-first so that a node's children are contiguous and
 * sorted by byte (binary search). */
struct tok_trie_node {
	uint32_t child;         /* index of the first child */
	uint16_t n_child;
	uint8_t byte;           /* label of the edge into this node */
	int32_t special;        /* index into t->special[] ending here, or -1 */
};

/* Strings that occur in BPE merges but not in the vocabulary, with ids from
 * n_vocab up (kept: SPM-style BPE looks characters up in it at encode time). */
struct tok_extra {
	char *arena;
	size_t arena_len, arena_cap;
	uint32_t *off, *len;    /* per extra id - n_vocab */
	uint32_t n, cap;
	struct smk_hindex map;  /* text -> extra id - n_vocab; rebuilt twice as
				 * large when full (merges are read at load) */
};

/* BPE merge: (left, right) -> rank and the id of left+right.  Ids are "extended":
 * < n_vocab for vocabulary strings, >= n_vocab for strings that only occur in
 * merges (so that merging is exact even for odd vocabularies). */
struct tok_merge {
	uint32_t left, right;
	int32_t rank;
	uint32_t result;
};

struct tokenizer {
	enum tok_kind kind;
	enum tok_pre pre;
	char model[8];

	int32_t n_vocab;
	char *arena;
	struct tok_entry *tok;
	struct smk_hindex vmap; /* text -> id */

	int32_t bos, eos, eot, eom, unk, pad;
	bool add_bos, add_eos, add_space_prefix, ignore_merges;
	/* SPM-style BPE (Gemma 4): spaces become U+2581 before pre-tokenizing,
	 * merges work on UTF-8 characters, not GPT-2 mapped bytes, and unknown
	 * symbols fall back to <0xXX> tokens. */
	bool escape_ws;
	/* Hugging Face tokenizers semantics (smoke.tokenizer.* keys, written by
	 * tokenizer_json.c): characters that are not tokens become <0xXX>
	 * tokens only with byte_fallback, else <unk> (consecutive ones fused
	 * into one with fuse_unk), else nothing; token types are taken as given
	 * (no text-based CONTROL fix-ups); no default special ids. */
	bool hf, byte_fallback, fuse_unk;
	bool nfc;               /* NFC-normalise each fragment first */
	enum tok_prefix prefix;

	int32_t *special;       /* CONTROL/USER_DEFINED/UNKNOWN ids, longest first */
	uint32_t n_special;
	struct tok_trie_node *trie;     /* node 0 is the root */
	uint32_t n_trie;

	int32_t byte_tok[256];  /* SPM byte fallback: <0xXX>, else 1-byte token, else -1;
				 * SPM-style BPE: <0xXX> only */

	/* BPE */
	struct tok_merge *merges;       /* one per distinct (left, right), lowest rank */
	uint32_t n_merges;
	struct smk_hindex merge_index;  /* (left, right) -> merges[] */
	struct tok_extra extra;
	uint32_t gpt2_ext[256];         /* extended id of byte b's GPT-2 character */
	int32_t gpt2_fallback[256][2];  /* llama.cpp's per-byte fallback for unknown symbols */
	int16_t gpt2_inv[324];          /* GPT-2 code point -> byte, -1 if none */
	uint16_t gpt2_cp[256];          /* byte -> GPT-2 code point */

	size_t max_piece;
};

#define TOK_NONE UINT32_MAX

/* Vocabulary lookup by bytes; -1 if absent. */
int32_t tok_lookup(const struct tokenizer *t, const char *s, size_t len);

/* Growable buffers for one encode() call. */
#define TOK_SCRATCH_SLOTS 13
struct tok_scratch {
	void *buf[TOK_SCRATCH_SLOTS];
	size_t cap[TOK_SCRATCH_SLOTS];
};
/* Buffer slot i with at least n bytes (contents kept on growth); NULL on ENOMEM. */
void *tok_scratch_get(struct tok_scratch *s, int i, size_t n);
void tok_scratch_free(struct tok_scratch *s);

/* Output accumulator: ids beyond cap are counted, not stored. */
struct tok_out {
	int32_t *ids;
	size_t cap;
	size_t n;
};

static inline void tok_emit(struct tok_out *o, int32_t id)
{
	if (o->n < o->cap)
		o->ids[o->n] = id;
	o->n++;
}

/* Scratch slots: the pre-split uses PARENT/MATCH/FRAG (FRAG holds the fragments
 * while they are tokenised); SPM and BPE use A.. for their own buffers. */
enum { SCR_PARENT, SCR_MATCH, SCR_FRAG, SCR_A, SCR_B, SCR_C, SCR_D, SCR_E, SCR_F, SCR_G, SCR_H,
       SCR_I, SCR_J };

/* tokenizer_bpe.c: tokenize one raw fragment; prefix: put a space in front. */
int tok_bpe_fragment(const struct tokenizer *t, const char *text, size_t len, bool prefix,
		     struct tok_scratch *s, struct tok_out *o);
/* tokenizer_bpe.c: the gpt-4o splitter on its own (for tests): splits each of
 * the n_in segments (lengths in code points, summing to the length of cps)
 * into words, writing their lengths to out (room for one per code point);
 * returns their number. */
size_t tok_split_gpt4o(const uint32_t *cps, const uint32_t *in, size_t n_in, uint32_t *out);
/* tokenizer_bpe.c: the exact o200k splitter (PRE_O200K), same contract. */
size_t tok_split_o200k(const uint32_t *cps, const uint32_t *in, size_t n_in, uint32_t *out);
/* tokenizer_case.c (generated): letter case of code points >= 128, ranges of
 * start << 2 | class (0 neither, 1 Lu/Lt, 2 Ll). */
extern const uint32_t tok_case_ranges[];
extern const size_t tok_case_ranges_n;
/* tokenizer_bpe.c: build merges and GPT-2 tables at load; free them. */
int tok_bpe_load(struct tokenizer *t, const struct gguf *g, struct smk_err *err);
void tok_bpe_free(struct tokenizer *t);

#endif
