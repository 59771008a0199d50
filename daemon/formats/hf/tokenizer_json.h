/* tokenizer_json.h - a Hugging Face tokenizer.json as GGUF tokenizer keys.
 *
 * Why: the tokenizer (tokenizer.h) is built from a struct gguf only.  A model
 * directory in Hugging Face layout is read by translating its tokenizer files
 * into the tokenizer.ggml.* keys llama.cpp's convert_hf_to_gguf.py writes (plus
 * a few smoke.tokenizer.* keys for the Hugging Face behaviours llama.cpp has no
 * key for), on the same gguf_builder that receives the model's keys and
 * tensors; gguf_builder_finish() + tokenizer_load_gguf() then give a tokenizer
 * whose ids equal those of the `tokenizers` library.
 *
 * Supported (everything else is refused with -ENOTSUP and a message naming
 * the JSON path and the value):
 *   model         BPE (merges as "a b" strings or [a, b] pairs, ignore_merges,
 *                 byte_fallback, unk_token + fuse_unk)
 *   byte-level    pre_tokenizer ByteLevel (GPT-2 regex, add_prefix_space), or
 *                 Sequence[Split(regex), ByteLevel(use_regex=false)] where the
 *                 regex is GPT-2's, Llama 3's, Qwen2's or o200k's (gpt-oss,
 *                 gpt-4o: pre "smoke-o200k") exact string
 *                 -> tokenizer.ggml.model "gpt2", pre "gpt-2" | "llama-bpe" | "qwen2" |
 *                 "smoke-o200k"
 *   SPM-style     normaliser Replace(" " -> U+2581) (+ Prepend(U+2581)) and no
 *                 pre-tokenizer (Llama 2) or Split(" ") (Gemma, a no-op then),
 *                 or pre_tokenizer Metaspace (any prepend_scheme, split or not)
 *                 -> model "gemma4", pre "smoke-none" | "smoke-metaspace"
 *   normaliser    NFC (Qwen2), alone or before the SPM-style ones
 *   added_tokens  special -> CONTROL, other -> USER_DEFINED; lstrip/rstrip
 *                 (single_word, and "normalized" ones behind the SPM-style
 *                 normaliser, are refused)
 *   post_processor TemplateProcessing with at most one special token before
 *                 and after $A, RobertaProcessing/BertProcessing, ByteLevel,
 *                 Sequence of those -> add_bos_token/add_eos_token + their ids
 * and, when present, tokenizer_config.json (bos/eos/unk/pad tokens as strings
 * or {"content": ...}; add_bos_token/add_eos_token where the post-processor
 * does not decide; chat_template as a string or a list of named templates,
 * else chat_template.jinja / chat_template.json) and generation_config.json
 * (eos_token_id as an integer or a list: all of them end generation).
 *
 * All files are untrusted: wrong JSON types, ids out of range or colliding,
 * duplicate texts, merges naming strings that are not in model.vocab fail with
 * -EINVAL and a message naming the file and the JSON path.
 */
#ifndef SMK_FORMATS_HF_TOKENIZER_JSON_H
#define SMK_FORMATS_HF_TOKENIZER_JSON_H

#include "formats/gguf_build.h"
#include "util/err.h"

/* Translate dir/tokenizer.json (+ dir/tokenizer_config.json and
 * dir/generation_config.json when present) into tokenizer.* keys on b.
 * Returns 0, -ENOENT (no tokenizer.json), -EINVAL, -ENOTSUP or -ENOMEM with
 * err set.  On failure b may hold some of the keys; the caller frees it.
 * Nothing is kept after the call (b copies what it is given). */
int tokenizer_json_to_gguf(struct gguf_builder *b, const char *dir, struct smk_err *err);

#endif
