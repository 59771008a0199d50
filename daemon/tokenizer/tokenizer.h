/* tokenizer.h - text <-> token ids, built from a GGUF file's tokenizer.ggml.* keys.
 *
 * The goal is bit-for-bit agreement with llama.cpp (src/llama-vocab.cpp and
 * src/unicode.cpp), because the models we serve were trained with, and are
 * checked against, that tokenisation.  Two tokenizer families are supported:
 *
 *   tokenizer.ggml.model = "llama"  SentencePiece BPE (SPM): Gemma 1-3, Llama 1-2,
 *                                   Mistral v1, Phi-3.  Score-ordered bigram merges
 *                                   over UTF-8 characters, spaces as U+2581,
 *                                   <0xXX> byte fallback.
 *   tokenizer.ggml.model = "gpt2"   byte-level BPE: Llama 3, Qwen 2/2.5/3, GPT-2, ...
 *                                   A pre-tokenizer regex (tokenizer.ggml.pre) splits
 *                                   the text into words; bytes are mapped through
 *                                   GPT-2's bytes_to_unicode; merges apply lowest
 *                                   rank first.
 *   tokenizer.ggml.model = "gemma4" SPM-style BPE (Gemma 4; also "gpt2" with pre
 *                                   gemma4): spaces as U+2581, split at newline
 *                                   runs, rank-ordered merges over UTF-8
 *                                   characters, <0xXX> byte fallback.  With
 *                                   pre "smoke-none" / "smoke-metaspace" (from
 *                                   a Hugging Face tokenizer.json, see
 *                                   tokenizer_json.h): no split / a word at
 *                                   every U+2581.
 *
 * A tokenizer translated from a Hugging Face tokenizer.json carries
 * smoke.tokenizer.hf and follows the `tokenizers` library where it differs
 * from llama.cpp: added tokens are cut out leftmost-longest, token types are
 * not fixed up by text, special ids have no defaults, unknown characters go
 * to <0xXX> tokens only with byte_fallback, else to <unk>; plus NFC and the
 * space-prefix schemes of its normalisers (tokenizer.c lists the keys).
 *
 * Other families (bert, t5, rwkv, plamo2, ...) and the BPE pre-tokenizers
 * that llama.cpp runs through std::regex with hand-made character classes
 * (deepseek-*, tekken, chameleon, ...) are refused at load with a message.  An
 * unknown tokenizer.ggml.pre string falls back to the "default" regexes (llama.cpp
 * refuses it; we accept it because a slightly worse split beats no model).
 *
 * Load-time validation (all untrusted): array types and lengths (tokens, scores,
 * token_type must have the same length), special-token ids in range, no duplicate
 * token texts (llama.cpp asserts on them), add_bos/add_eos only with a BOS/EOS
 * token.  Token texts need not be valid UTF-8 (they are byte strings to us).
 *
 * Thread safety: a loaded tokenizer is immutable; every function below may be
 * called from several threads at once.
 */
#ifndef SMK_TOKENIZER_TOKENIZER_H
#define SMK_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "util/err.h"

struct tokenizer;

/* Build a tokenizer from g's metadata.  Everything is copied, so g may be closed
 * afterwards.  On success *out is owned by the caller (tokenizer_free).  Errors:
 * -ENOENT (no tokenizer.ggml.model / tokens), -ENOTSUP (a tokenizer family or
 * pre-tokenizer we do not implement), -EINVAL (malformed vocabulary), -ENOMEM;
 * err names the key and the reason. */
int tokenizer_load_gguf(struct tokenizer **out, const struct gguf *g, struct smk_err *err);
void tokenizer_free(struct tokenizer *t);

int32_t tokenizer_n_vocab(const struct tokenizer *t);
int32_t tokenizer_bos(const struct tokenizer *t);   /* -1 if none */
int32_t tokenizer_eos(const struct tokenizer *t);   /* -1 if none */
int32_t tokenizer_eot(const struct tokenizer *t);   /* -1 if none (e.g. <end_of_turn>) */
int32_t tokenizer_unk(const struct tokenizer *t);   /* -1 if none */
int32_t tokenizer_pad(const struct tokenizer *t);   /* -1 if none */
bool tokenizer_add_bos(const struct tokenizer *t);  /* encode(add_special) prepends BOS */
bool tokenizer_add_eos(const struct tokenizer *t);  /* encode(add_special) appends EOS */
/* "llama", "gpt2" or "gemma4" */
const char *tokenizer_model(const struct tokenizer *t);

/* End of generation: EOS, EOT, EOM and the tokens llama.cpp recognises by text
 * (<end_of_turn>, <|eot_id|>, <|im_end|>, <|endoftext|>, <|end|>, ...).  False for
 * ids out of range. */
bool tokenizer_is_eog(const struct tokenizer *t, int32_t id);
/* CONTROL type (including tokens forced to it, like the EOG texts above). */
bool tokenizer_is_control(const struct tokenizer *t, int32_t id);

/* Exact lookup of a token text (any type); -1 if absent. */
int32_t tokenizer_find(const struct tokenizer *t, const char *text, size_t len);

/* Raw text of token id as stored in the vocabulary (no decoding), NULL if out of
 * range.  *len receives its length; the text is not NUL-terminated. */
const char *tokenizer_text(const struct tokenizer *t, int32_t id, size_t *len);

/* Encode text[len] into ids.
 *   add_special:   prepend BOS if the model says so (tokenizer_add_bos), append EOS
 *                  if tokenizer_add_eos.
 *   parse_special: CONTROL and UNKNOWN token texts in the input become those
 *                  tokens.  USER_DEFINED token texts are always matched (as in
 *                  llama.cpp and HF tokenizers).  Longer token texts are cut out
 *                  first, over the whole input.
 * Invalid UTF-8 never fails and never crashes: it is handled exactly as llama.cpp
 * does - SPM groups bytes by their lead byte's length and emits <0xXX> byte tokens
 * for what is not in the vocabulary; BPE pre-tokenisation reads each invalid byte
 * as U+FFFD.  NUL bytes are ordinary bytes.
 * n is at most 6 * len + 2 (every byte can fall back to byte tokens, an invalid
 * byte read as U+FFFD to three of them), usually far less; a caller can also try
 * a smaller cap and retry with *n_out.
 * Writes min(n, cap) ids to out and the full count n to *n_out; returns 0, or
 * -ENOSPC if n > cap (the first cap ids are still valid), -ENOMEM, or -E2BIG for
 * inputs of 256 MiB or more.
 * Memory: a few scratch buffers per call, sized by the input (tens of bytes per
 * input byte at most) and grown by doubling, freed before returning; nothing is
 * allocated per token or per word. */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len,
		     bool add_special, bool parse_special,
		     int32_t *out, size_t cap, size_t *n_out, struct smk_err *err);

/* The bytes a token stands for: SPM "▁" -> " ", BPE GPT-2 byte mapping undone,
 * <0xXX> -> that byte.  CONTROL and UNKNOWN tokens render as "" unless special;
 * USER_DEFINED tokens render as their text.  Returns the full byte count; writes
 * min(count, cap) bytes (no NUL).  0 for ids out of range. */
size_t tokenizer_piece(const struct tokenizer *t, int32_t id, bool special, char *buf, size_t cap);

/* Longest piece of any token, in bytes (for sizing buffers). */
size_t tokenizer_max_piece(const struct tokenizer *t);

/* Streaming detokeniser for generation: concatenates the pieces (special=false)
 * and only ever emits whole, valid UTF-8 characters.  An incomplete trailing
 * sequence is held back until the next token completes it; bytes that cannot
 * become valid UTF-8 are emitted as U+FFFD, one per maximal ill-formed subpart
 * (Unicode's recommended practice).  The caller owns the struct; no allocation. */
struct detok {
	unsigned char pend[8];
	int n_pend;
};

void detok_init(struct detok *d);
/* Bytes written to out.  cap >= tokenizer_detok_cap(t) always suffices; with a
 * smaller cap, output beyond cap is dropped at a character boundary. */
size_t detok_push(const struct tokenizer *t, struct detok *d, int32_t id, char *out, size_t cap);
/* Emit what is still held back (as U+FFFD) and reset d.  cap >= 4 suffices. */
size_t detok_flush(struct detok *d, char *out, size_t cap);
/* A detok_push output capacity that is never too small for this vocabulary. */
size_t tokenizer_detok_cap(const struct tokenizer *t);

#endif
