/* hf_gpt_oss.h - gpt-oss's experts from a Hugging Face directory (used by
 * hf_model.c only).
 *
 * transformers and OpenAI store a layer's experts in layouts the forward
 * pass does not read:
 *   dense (transformers' save_pretrained, F32/F16/BF16):
 *     mlp.experts.gate_up_proj [E, H, 2I]: x @ W, so input-major, with gate
 *       and up interleaved in the last dimension (gate = even columns);
 *     mlp.experts.down_proj [E, I, H]: likewise input-major;
 *   MXFP4 (OpenAI's checkpoints, config quantization_config.quant_method
 *   "mxfp4"): the matrices output-major ([E, out, in]), in groups of 32
 *   along `in`:
 *     mlp.experts.<p>_blocks uint8 [E, out, in/32, 16]: byte i of a group
 *       holds element 2i in its low nibble and 2i+1 in its high nibble (E2M1
 *       codes: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives);
 *     mlp.experts.<p>_scales uint8 [E, out, in/32]: E8M0, scale 2^(s-127);
 *     gate_up's rows interleaved (gate = even rows);
 *   both: mlp.experts.gate_up_proj_bias [E, 2I] (interleaved) and
 *     down_proj_bias [E, H].
 * (transformers' integrations/mxfp4.py _convert_moe_packed_tensors and
 * modeling_gpt_oss.py GptOssExperts._apply_gate, 5.x.)
 *
 * What the GGUF path reads (llama.cpp's GptOssModel converter): per layer
 * the slabs blk.N.ffn_{gate,up}_exps.weight {H, I, E} and
 * ffn_down_exps.weight {I, H, E} (rows contiguous along the input), MXFP4 as
 * ggml's block (one E8M0 byte, then 16 bytes: element j in the low nibble of
 * byte j, element j+16 in its high nibble; the same scale byte, since
 * ggml's doubled value table times 2^(e-128) equals E2M1 times 2^(e-127)),
 * and the biases blk.N.ffn_{gate,up,down}_exps.bias {len, E} in F32.
 *
 * Where the converted bytes live: the weight matrices are converted once
 * into a cache file that the handle then maps and names as a source of its
 * own, so the weight store reads experts from it like from the safetensors
 * files (tier 0) and no expert costs RAM at load (a real gpt-oss-20b's
 * experts are ~12 GB):
 *   ${SMOKE_CACHE:-$HOME/.cache/smoke}/hf-convert/
 *       gpt-oss-<fnv64(realpath(dir))>-<fnv64(identity)>.smkx
 * The identity text (in the file's header, compared byte for byte at open)
 * is the converter's version, the directory's real path, each shard's name,
 * size, mtime (ns) and inode, and every converted slab's name, type, shape,
 * offset and size: touching, replacing or rewriting a shard changes it, and
 * the file is rebuilt (older files of the same directory are deleted then).
 * The file: "SMKHFX01", then u64 identity length, u64 data offset, u64
 * data bytes (little-endian), the identity text, zeros up to the data
 * offset (a multiple of 4096), then the slabs, each at the 4096-aligned
 * offset its identity line names, expert by expert (ggml's ne2 order).
 * A file is written to a temporary name in the same folder, fsync'ed and
 * renamed, so a reader never sees a half-written one; two loaders racing
 * both write a complete file and the last rename wins.  The cache's bytes
 * are not checksummed (that would read every expert at each load): it is
 * trusted like a file smoke wrote, its header and size are checked.
 * The biases (a few MB for the 20b) are F32 copies held by the handle. */
#ifndef SMK_FORMATS_HF_HF_GPT_OSS_H
#define SMK_FORMATS_HF_HF_GPT_OSS_H

#include <stdbool.h>
#include <stdint.h>

#include "formats/gguf_build.h"
#include "formats/safetensors.h"
#include "util/err.h"

struct hf_oss_shape {
	int n_layer, n_expert;
	int64_t n_embd, n_ff;      /* H and I (intermediate_size) */
};

/* The mapped cache file; NULL-safe close. */
struct hf_oss_cache;
void hf_oss_cache_close(struct hf_oss_cache *c);

/* True if rest (the part of a tensor name after "model.layers.N.") is one
 * of the expert tensors hf_oss_experts() reads. */
bool hf_oss_is_expert_tensor(const char *rest);

/* Check every layer's expert tensors in set (shapes, dtypes, blocks against
 * scales), convert the matrices into the cache file (or reuse it), and add
 * the slabs and biases to b.  On success *cache holds the mapping the slabs
 * point into (the caller releases it when the handle closes).  Errors name
 * the shard file and tensor, or the cache path. */
int hf_oss_experts(struct gguf_builder *b, const struct st_set *set, const char *dir,
		   const struct hf_oss_shape *sh, struct hf_oss_cache **cache, struct smk_err *err);

#endif
