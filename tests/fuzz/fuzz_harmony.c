/* fuzz_harmony.c - the harmony (gpt-oss) output parser
 * (daemon/engine/harmony.c) on arbitrary generated text, pushed in chunks
 * whose sizes the input picks, and step by step with token ids of
 * gpt-oss's vocabulary (harmony_push_step).  Checks what harmony.h
 * promises: every emitted span is of a channel other than DROP, is not
 * empty, and the bytes emitted never exceed the bytes pushed plus the
 * marker texts added by push_step. */
#include <stdlib.h>
#include <string.h>

#include "engine/harmony.h"
#include "fuzz_common.h"

static struct tokenizer *oss;
static size_t emitted;

static void on_emit(void *ctx, enum harmony_channel ch, const char *s, size_t len)
{
	if (ch == HARMONY_DROP || len == 0)
		abort();
	volatile char c = s[0] + s[len - 1];   /* the span is readable */
	(void)c;
	emitted += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (!oss)
		oss = fuzz_tokenizer("hf-models/gpt-oss-bf16", NULL);
	struct harmony_parser p;
	harmony_init(&p);
	emitted = 0;
	size_t pushed = 0;
	const uint8_t mode = data[0];
	const char *s = (const char *)data + 1;
	size_t len = size - 1;
	if (mode & 1) {
		/* Steps: [u8 id-or-none][u8 text length][text], as the worker
		 * gives released text and the step's token. */
		size_t i = 0;
		while (i + 2 <= len) {
			uint8_t sel = (uint8_t)s[i], tl = (uint8_t)s[i + 1] & 31;
			i += 2;
			if (tl > len - i)
				tl = (uint8_t)(len - i);
			int32_t id = sel < 128 ? -1 : (int32_t)(tokenizer_n_vocab(oss) - 1 - (sel - 128));
			harmony_push_step(&p, oss, id, s + i, tl, on_emit, NULL);
			pushed += tl + 16;   /* a marker's text is at most 16 bytes */
			i += tl;
		}
	} else {
		size_t chunk = (size_t)(mode >> 1) % 17 + 1;
		for (size_t i = 0; i < len; i += chunk) {
			size_t k = len - i < chunk ? len - i : chunk;
			harmony_push(&p, s + i, k, on_emit, NULL);
		}
		pushed = len;
	}
	harmony_finish(&p, on_emit, NULL);
	if (emitted > pushed)
		abort();
	return 0;
}
