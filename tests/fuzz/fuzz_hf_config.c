/* fuzz_hf_config.c - a Hugging Face model directory's config.json
 * (daemon/formats/hf/hf_model.c, hf_gpt_oss.c: the keys, shapes and
 * settings translated into a GGUF handle).  The first input byte picks one
 * of the fixture models (its safetensors and tokenizer files copied into a
 * scratch directory at start); the rest is config.json.  What opens is
 * walked as the GGUF harness does (tensors read to their last byte). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "formats/hf/hf_model.h"
#include "fuzz_common.h"

static const char *const models[] = {
	"llama-f32", "qwen2-f32", "gemma3-f32", "mistral-bf16", "qwen3-bf16",
	"qwen3moe-bf16", "mixtral-bf16", "gpt-oss-bf16", "gpt-oss-mxfp4",
};
#define N_MODELS (sizeof(models) / sizeof(models[0]))
static char *dirs[N_MODELS];

/* Every file of fixtures/hf-models/name but config.json and reference.json. */
static void setup(void)
{
	char cache[4200];
	snprintf(cache, sizeof(cache), "%s/cache", fuzz_dir());
	/* gpt-oss's experts are converted into a cache file: keep it in the
	 * scratch directory, not in the user's ~/.cache. */
	setenv("SMOKE_CACHE", cache, 1);
	static const char *const files[] = {
		"model.safetensors", "model.safetensors.index.json", "model-00001-of-00004.safetensors",
		"model-00002-of-00004.safetensors", "model-00003-of-00004.safetensors",
		"model-00004-of-00004.safetensors", "model-00001-of-00002.safetensors",
		"model-00002-of-00002.safetensors", "tokenizer.json", "tokenizer_config.json",
		"generation_config.json",
	};
	for (size_t m = 0; m < N_MODELS; m++) {
		dirs[m] = fuzz_path(fuzz_dir(), models[m]);
		mkdir(dirs[m], 0700);
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			char rel[512];
			struct stat st;
			snprintf(rel, sizeof(rel), "hf-models/%s/%s", models[m], files[i]);
			char *abs = fuzz_fixture(rel);
			if (stat(abs, &st) == 0)
				fuzz_copy(rel, dirs[m], files[i]);
			free(abs);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dirs[0])
		setup();
	if (size < 1)
		return 0;
	const char *dir = dirs[data[0] % N_MODELS];
	char *cfg = fuzz_path(dir, "config.json");
	fuzz_write(cfg, data + 1, size - 1);
	free(cfg);
	struct gguf *g = NULL;
	struct smk_err err = { 0 };
	if (hf_open(&g, dir, &err))
		return 0;
	volatile uint64_t h = gguf_n_kv(g);
	for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
		const struct gguf_tensor *t = gguf_tensor(g, i);
		const unsigned char *d = t->data;
		if (t->nbytes)
			h += d[0] + d[t->nbytes - 1];
	}
	gguf_close(g);
	(void)h;
	return 0;
}
