/* hf_model.h - a Hugging Face model directory read as a GGUF handle.
 *
 * A directory with config.json, model.safetensors (or sharded with
 * model.safetensors.index.json) and tokenizer.json (+ tokenizer_config.json,
 * generation_config.json) is translated into the keys and tensor names
 * llama.cpp's convert_hf_to_gguf.py would write, so arch/model.c and the
 * tokenizer read it exactly like a GGUF file ("two readers, one plan").
 *
 * Supported architectures (config.json "architectures"): the classes
 * formats/family.c maps to a family.  Weights F32, F16
 * or BF16, used in place from the mapping (2-D) except:
 *   - norms and biases become F32 copies (the forward pass reads them as
 *     float), Gemma's norms with the +1 its RMSNorm applies folded in, as
 *     the converter does;
 *   - llama3 rope_scaling becomes the rope_freqs factors tensor;
 *   - gpt-oss's experts (dense or MXFP4, interleaved gate/up) are converted
 *     once into a cache file the handle maps (hf_gpt_oss.h).
 * q and k stay in the checkpoint's rotate-half row order; the handle says so
 * with smoke.rope.layout = "neox" (the converter permutes llama's rows into
 * the interleaved order instead - same numbers, no copy here).
 * Anything config.json asks for that the forward pass does not implement
 * (softcapping, MLP bias, other rope scalings, sliding windows on families
 * without them) is refused with a message naming the key. */
#ifndef SMK_FORMATS_HF_HF_MODEL_H
#define SMK_FORMATS_HF_HF_MODEL_H

#include "formats/gguf.h"
#include "util/err.h"

int hf_open(struct gguf **out, const char *dir, struct smk_err *err);

#endif
