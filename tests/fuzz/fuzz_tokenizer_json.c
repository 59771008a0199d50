/* fuzz_tokenizer_json.c - a Hugging Face tokenizer directory
 * (daemon/formats/hf/tokenizer_json.c) and the tokenizer it becomes.  The
 * input is up to three files separated by the bytes FF FE FD (which no
 * UTF-8 JSON text holds): tokenizer.json, tokenizer_config.json,
 * generation_config.json; a file without its part is absent.  What
 * translates is finished into a GGUF handle and loaded as a tokenizer,
 * which then encodes and decodes a fixed text: the path a model load takes. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/chat.h"
#include "formats/gguf_build.h"
#include "formats/hf/tokenizer_json.h"
#include "fuzz_common.h"

static const char *const names[] = { "tokenizer.json", "tokenizer_config.json", "generation_config.json" };
static char *paths[3];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!paths[0])
		for (int i = 0; i < 3; i++)
			paths[i] = fuzz_path(fuzz_dir(), names[i]);
	const uint8_t *p = data, *end = data + size;
	for (int i = 0; i < 3; i++) {
		if (!p) {
			unlink(paths[i]);
			continue;
		}
		const uint8_t *q = p;
		while (q + 3 <= end && !(q[0] == 0xff && q[1] == 0xfe && q[2] == 0xfd))
			q++;
		if (q + 3 > end)
			q = end;
		fuzz_write(paths[i], p, (size_t)(q - p));
		p = q < end ? q + 3 : NULL;
	}
	struct gguf_builder *b;
	struct smk_err err = { 0 };
	if (gguf_builder_new(&b, fuzz_dir()))
		abort();
	if (tokenizer_json_to_gguf(b, fuzz_dir(), &err)) {
		gguf_builder_free(b);
		return 0;
	}
	struct gguf *g;
	if (gguf_builder_finish(b, &g, &err))
		return 0;
	struct tokenizer *t;
	if (tokenizer_load_gguf(&t, g, &err) == 0) {
		volatile uint64_t h = chat_detect(g, t);
		static const char text[] = " Hello  world!\n\n<|im_start|>user <s>\xc3\xa9\xe2\x96\x81x\xff 1234";
		int32_t ids[1024];
		size_t n = 0;
		if (tokenizer_encode(t, text, sizeof(text) - 1, true, true, ids, 1024, &n, &err) == 0) {
			char *buf = malloc(tokenizer_detok_cap(t) + 8);
			struct detok d;
			detok_init(&d);
			for (size_t i = 0; i < n; i++)
				h += detok_push(t, &d, ids[i], buf, tokenizer_detok_cap(t));
			h += detok_flush(&d, buf, 4);
			free(buf);
		}
		(void)h;
		tokenizer_free(t);
	}
	gguf_close(g);
	return 0;
}
