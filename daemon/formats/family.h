/* family.h - the model families smoke runs: the one list of them.
 *
 * A family is one GGUF general.architecture; Hugging Face names it by the
 * class in config.json's "architectures" (several classes may share one
 * family: Mistral is a Llama).  formats/hf translates a directory into the
 * family's GGUF keys; arch/model.c keeps each family's plan (norms, RoPE,
 * activation) in a table indexed by enum family.  Adding a family starts
 * here.
 */
#ifndef SMK_FORMATS_FAMILY_H
#define SMK_FORMATS_FAMILY_H

#include <stddef.h>

enum family {
	FAMILY_LLAMA,   /* llama 2/3, mistral (GGUF arch "llama") */
	FAMILY_QWEN2,
	FAMILY_GEMMA3,
	FAMILY_QWEN3,   /* qwen3: per-head q/k norms, no biases */
	FAMILY_QWEN3MOE, /* qwen3moe: qwen3 attention, mixture-of-experts FFN */
	FAMILY_GPT_OSS,  /* gpt-oss: sinks, biases, YaRN, alternating sliding window,
			  * experts gated softmax-after-top-k with the clamped SwiGLU */
	FAMILY_COUNT
};

struct family_info {
	enum family family;
	const char *gguf_arch;   /* general.architecture */
	const char *hf_act;      /* config.json hidden_act the forward pass implements */
};

/* The family of a general.architecture value (len bytes, not terminated),
 * or NULL. */
const struct family_info *family_by_gguf_arch(const char *arch, size_t len);

/* The family of a Hugging Face architectures[0] class name, or NULL. */
const struct family_info *family_by_hf_class(const char *name);

/* The family's general.architecture name. */
const char *family_name(enum family f);

/* "llama, qwen2, gemma3, ..." (hf: the class names) for error messages; buf is
 * returned, truncated to len. */
const char *family_list(char *buf, size_t len, int hf);

#endif
