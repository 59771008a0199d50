/* fuzz_chat.c - chat-template rendering with hostile message contents
 * (daemon/engine/chat.c) over every chat format and the fixture
 * vocabularies.  Input: byte 0 picks the vocabulary, byte 1 the format and
 * the token budget and whether the request has tools; the rest is split
 * at NUL bytes into messages, each starting with a byte that picks its
 * role (and for an assistant, whether it carries a tool call).  The
 * rendering must either fit max_tokens or fail as chat.h documents (-E2BIG;
 * -ENOTSUP, -EINVAL for tools a format cannot write), and every id must be
 * in the vocabulary. */
#include <stdlib.h>
#include <string.h>

#include "engine/chat.h"
#include "fuzz_common.h"

static struct tokenizer *toks[FUZZ_N_VOCABS];
static struct gguf *ggufs[FUZZ_N_VOCABS];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const roles[] = { "system", "developer", "user", "assistant", "tool" };
	/* A call in an assistant message: its arguments text comes from the
	 * HTTP layer (a JSON object's dump) and is written as it is. */
	static const struct chat_call call = { .name = "get_weather", .args = "{\"city\": \"<|im_end|>\"}" };
	static const enum chat_format formats[] = { CHAT_GEMMA, CHAT_CHATML, CHAT_LLAMA3, CHAT_PLAIN, CHAT_HARMONY };
	if (size < 2)
		return 0;
	int v = data[0] % FUZZ_N_VOCABS;
	if (!toks[v])
		toks[v] = fuzz_tokenizer(fuzz_vocabs[v], &ggufs[v]);
	const struct tokenizer *t = toks[v];
	/* Half the time the format the daemon would pick for this vocabulary. */
	enum chat_format f = (data[1] & 8) ? chat_detect(ggufs[v], t) : formats[(data[1] & 7) % 5];
	int max_tokens = (data[1] & 0x80) ? 16 : 1 << 20;

	struct chat_msg msgs[64] = { 0 };
	int n = 0;
	const uint8_t *p = data + 2, *end = data + size;
	while (p < end && n < 64) {
		const uint8_t *q = memchr(p, 0, (size_t)(end - p));
		if (!q)
			q = end;
		if (q > p) {
			/* role byte: bits 0-2 the role, bit 3 a tool call (assistant) */
			msgs[n].role = roles[(p[0] & 7) % 5];
			msgs[n].content = (const char *)p + 1;
			msgs[n].len = (size_t)(q - p) - 1;
			if ((p[0] & 8) && !strcmp(msgs[n].role, "assistant")) {
				msgs[n].calls = &call;
				msgs[n].n_calls = 1;
			}
			n++;
		}
		p = q + 1;
	}
	if (n == 0)
		return 0;
	int32_t *ids = NULL;
	int n_ids = 0;
	struct smk_err err = { 0 };
	/* Half the time with tools (a description with markers in it). */
	static json_t *tools;
	if (!tools)
		tools = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
				   "\"description\": \"<|im_end|><end_of_turn><|eot_id|>\", \"parameters\": "
				   "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}}]",
				   0, NULL);
	int rc = chat_encode_tools(f, t, msgs, n, (data[1] & 0x40) ? tools : NULL, max_tokens, &ids, &n_ids, &err);
	if (rc == 0) {
		if (n_ids > max_tokens)
			abort();
		for (int i = 0; i < n_ids; i++)
			if (ids[i] < 0 || ids[i] >= tokenizer_n_vocab(t))
				abort();
		free(ids);
	} else if (rc != -E2BIG && rc != -ENOTSUP && rc != -EINVAL) {
		abort();   /* nothing else is documented (chat.h) */
	}
	return 0;
}
