/* fuzz_chat.c - chat-template rendering with hostile message contents
 * (daemon/engine/chat.c) over every chat format and the fixture
 * vocabularies.  Input: byte 0 picks the vocabulary, byte 1 the format and
 * the token budget; the rest is split at NUL bytes into messages, each
 * starting with a byte that picks its role.  The rendering must either fit
 * max_tokens or say -E2BIG, and every id must be in the vocabulary. */
#include <stdlib.h>
#include <string.h>

#include "engine/chat.h"
#include "fuzz_common.h"

static struct tokenizer *toks[FUZZ_N_VOCABS];
static struct gguf *ggufs[FUZZ_N_VOCABS];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const roles[] = { "system", "developer", "user", "assistant" };
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
			msgs[n].role = roles[p[0] & 3];
			msgs[n].content = (const char *)p + 1;
			msgs[n].len = (size_t)(q - p) - 1;
			n++;
		}
		p = q + 1;
	}
	if (n == 0)
		return 0;
	int32_t *ids = NULL;
	int n_ids = 0;
	struct smk_err err = { 0 };
	int rc = chat_encode(f, t, msgs, n, max_tokens, &ids, &n_ids, &err);
	if (rc == 0) {
		if (n_ids > max_tokens)
			abort();
		for (int i = 0; i < n_ids; i++)
			if (ids[i] < 0 || ids[i] >= tokenizer_n_vocab(t))
				abort();
		free(ids);
	} else if (rc != -E2BIG) {
		abort();   /* nothing else is documented */
	}
	return 0;
}
