/* remote.h - a model in object storage opened as a GGUF handle.
 *
 * s3://BUCKET/KEY.gguf or http(s)://HOST/PATH.gguf: a GGUF file.  Its header
 * (metadata and tensor infos) is fetched into the staged backing file
 * (objstore/osrc.h) by a growing prefix: 8 MiB first, doubled until the
 * reader parses it and the tensor infos end inside it; the bytes beyond are
 * never read by the parser, so a parse that succeeds read only fetched
 * bytes.  Tensor data stays in object storage until the weight store
 * reads it (or gguf_pin asks for it).
 *
 * s3://BUCKET/PREFIX/ (a trailing '/'): a Hugging Face directory.
 * config.json and tokenizer.json are fetched whole, tokenizer_config.json,
 * generation_config.json and chat_template.json when present, then
 * model.safetensors.index.json and the shards it names (else
 * model.safetensors): each shard's header (its 8-byte length, then the
 * JSON) and its 1-D tensors (the norms and biases the reader copies at
 * open) are fetched, the rest is read on demand.  Then hf_model.h reads
 * the staged directory as it reads a local one.
 */
#ifndef SMK_FORMATS_REMOTE_H
#define SMK_FORMATS_REMOTE_H

#include "formats/gguf.h"
#include "util/err.h"

/* *out owned by the caller (gguf_close, which also closes the objects).
 * Errors name the URL (never a credential). */
int remote_open(struct gguf **out, const char *url, struct smk_err *err);

#endif
