/* family.c - the families and the Hugging Face classes that map to them. */
#include "formats/family.h"

#include <stdio.h>
#include <string.h>

static const struct family_info families[FAMILY_COUNT] = {
	[FAMILY_LLAMA] = { FAMILY_LLAMA, "llama", "silu" },
	[FAMILY_QWEN2] = { FAMILY_QWEN2, "qwen2", "silu" },
	[FAMILY_GEMMA3] = { FAMILY_GEMMA3, "gemma3", "gelu_pytorch_tanh" },
	[FAMILY_QWEN3] = { FAMILY_QWEN3, "qwen3", "silu" },
	[FAMILY_QWEN3MOE] = { FAMILY_QWEN3MOE, "qwen3moe", "silu" },
	/* HF directories: formats/hf/hf_gpt_oss.h converts the experts */
	[FAMILY_GPT_OSS] = { FAMILY_GPT_OSS, "gpt-oss", "swiglu_oai" },
};

static const struct {
	const char *name;
	enum family family;
} hf_classes[] = {
	{ "LlamaForCausalLM", FAMILY_LLAMA },
	{ "MistralForCausalLM", FAMILY_LLAMA },
	{ "Qwen2ForCausalLM", FAMILY_QWEN2 },
	{ "Qwen3ForCausalLM", FAMILY_QWEN3 },
	{ "Qwen3MoeForCausalLM", FAMILY_QWEN3MOE },
	{ "MixtralForCausalLM", FAMILY_LLAMA },
	{ "Gemma3ForCausalLM", FAMILY_GEMMA3 },
	{ "GptOssForCausalLM", FAMILY_GPT_OSS },
};

#define N_HF (sizeof(hf_classes) / sizeof(hf_classes[0]))

const struct family_info *family_by_gguf_arch(const char *arch, size_t len)
{
	for (int i = 0; i < FAMILY_COUNT; i++)
		if (strlen(families[i].gguf_arch) == len && !memcmp(families[i].gguf_arch, arch, len))
			return &families[i];
	return NULL;
}

const struct family_info *family_by_hf_class(const char *name)
{
	for (size_t i = 0; i < N_HF; i++)
		if (!strcmp(hf_classes[i].name, name))
			return &families[hf_classes[i].family];
	return NULL;
}

const char *family_name(enum family f)
{
	return f >= 0 && f < FAMILY_COUNT ? families[f].gguf_arch : "?";
}

const char *family_list(char *buf, size_t len, int hf)
{
	size_t n = hf ? N_HF : FAMILY_COUNT, used = 0;
	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < n && used < len; i++) {
		int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
				 hf ? hf_classes[i].name : families[i].gguf_arch);
		if (w < 0)
			break;
		used += (size_t)w;
	}
	return buf;
}
