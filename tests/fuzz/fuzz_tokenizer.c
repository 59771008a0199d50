/* fuzz_tokenizer.c - the tokenizers' encode and decode on arbitrary bytes
 * (daemon/tokenizer/): SentencePiece, byte-level BPE with each
 * pre-tokenizer, and the Hugging Face variants, from the fixture
 * vocabularies (fuzz_vocabs).  Input: byte 0 picks the vocabulary, byte 1
 * the flags (add_special, parse_special, a small output cap), the rest is
 * the text.  The ids are decoded back (pieces, the streaming detokeniser);
 * then the same bytes read as arbitrary int32 ids (out of range included)
 * are decoded too. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static struct tokenizer *toks[FUZZ_N_VOCABS];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	int v = data[0] % FUZZ_N_VOCABS;
	if (!toks[v])
		toks[v] = fuzz_tokenizer(fuzz_vocabs[v], NULL);
	const struct tokenizer *t = toks[v];
	const uint8_t flags = data[1];
	const char *text = (const char *)data + 2;
	size_t len = size - 2;

	size_t cap = (flags & 4) ? len / 2 + 1 : 6 * len + 2;
	int32_t *ids = malloc(cap * sizeof(int32_t));
	size_t n = 0;
	struct smk_err err = { 0 };
	int rc = tokenizer_encode(t, text, len, flags & 1, flags & 2, ids, cap, &n, &err);
	if (rc != 0 && rc != -ENOSPC)
		abort();   /* encode never fails on text below 256 MiB */
	if (rc == 0 && n > 6 * len + 2)
		abort();   /* the documented bound */
	size_t m = n < cap ? n : cap;
	const size_t dcap = tokenizer_detok_cap(t);
	char *buf = malloc(dcap + 64);
	char piece[64];
	volatile uint64_t h = 0;
	struct detok d;
	detok_init(&d);
	for (size_t i = 0; i < m; i++) {
		h += tokenizer_piece(t, ids[i], flags & 8, piece, sizeof(piece));
		h += detok_push(t, &d, ids[i], buf, dcap);
	}
	h += detok_flush(&d, buf, 4);
	/* Arbitrary ids, with a small output buffer at times. */
	detok_init(&d);
	for (size_t i = 0; i + 4 <= len; i += 4) {
		int32_t id;
		memcpy(&id, text + i, 4);
		if (flags & 16)
			id %= tokenizer_n_vocab(t) + 8;
		size_t tl;
		h += tokenizer_text(t, id, &tl) != NULL;
		h += tokenizer_is_eog(t, id) + tokenizer_is_control(t, id);
		h += tokenizer_piece(t, id, flags & 32, piece, (size_t)(flags >> 6) * 7);
		h += detok_push(t, &d, id, buf, (flags & 64) ? 5 : dcap);
	}
	h += detok_flush(&d, buf, 4);
	h += tokenizer_find(t, text, len < 64 ? len : 64);
	(void)h;
	free(buf);
	free(ids);
	return 0;
}
