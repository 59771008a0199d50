/* tokenizer_piece.c - token ids back to bytes: pieces and the streaming
 * detokeniser.
 *
 * A piece follows llama.cpp's token_to_piece(): CONTROL/UNKNOWN tokens are
 * empty unless `special`; USER_DEFINED (and CONTROL/UNKNOWN when shown) are
 * their raw text; NORMAL tokens are unescaped (SPM and SPM-style BPE: U+2581 ->
 * space; byte-level BPE: each code point through GPT-2's byte map, an
 * unmappable one rendered as "[UNK_BYTE_0x<hex>" + text + "]" exactly as
 * llama.cpp does); BYTE tokens are the byte they name; UNUSED/undefined
 * tokens are empty.
 */
#include "tokenizer/tokenizer_impl.h"

#include <string.h>

#include "unicode/unicode.h"

/* Writes bytes [skip, skip + cap) of a byte stream, counts all of them. */
struct sink {
	char *buf;
	size_t cap;
	size_t skip;
	size_t n;
};

static void put(struct sink *k, const char *s, size_t len)
{
	size_t end = k->skip + k->cap;
	if (k->buf && k->n < end && k->n + len > k->skip) {
		size_t from = k->n < k->skip ? k->skip - k->n : 0;
		size_t to = k->n + len > end ? end - k->n : len;
		memcpy(k->buf + (k->n + from - k->skip), s + from, to - from);
	}
	k->n += len;
}

static void put_bpe_text(const struct tokenizer *t, struct sink *k, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t pos = 0;
	while (pos < len) {
		uint32_t cp = unicode_decode_lenient(s, len, &pos);
		int b = cp < 324 ? t->gpt2_inv[cp] : -1;
		if (b >= 0) {
			char c = (char)b;
			put(k, &c, 1);
			continue;
		}
		char u[4];
		size_t n = unicode_encode(cp, u);
		put(k, "[UNK_BYTE_0x", 12);
		for (size_t i = 0; i < n; i++) {
			char h[2] = { hex[(unsigned char)u[i] >> 4], hex[u[i] & 15] };
			put(k, h, 2);
		}
		put(k, s, len);
		put(k, "]", 1);
	}
}

/* Piece of id, bytes [skip, skip + cap) into buf; returns the full length. */
static size_t piece_range(const struct tokenizer *t, int32_t id, bool special, size_t skip,
			  char *buf, size_t cap)
{
	struct sink k = { buf, cap, skip, 0 };
	if (id < 0 || id >= t->n_vocab)
		return 0;
	const struct tok_entry *e = &t->tok[id];
	const char *s = t->arena + e->off;
	if (!special && (e->attr & (TA_UNKNOWN | TA_CONTROL)))
		return 0;
	if (e->attr & (TA_UNKNOWN | TA_CONTROL | TA_USER_DEFINED)) {
		put(&k, s, e->len);
	} else if (e->attr & TA_NORMAL) {
		if (t->kind == TOK_BPE && !t->escape_ws) {
			put_bpe_text(t, &k, s, e->len);
		} else {
			size_t i = 0, run = 0;
			for (; i + run < e->len;) {
				if (i + run + 3 <= e->len && memcmp(s + i + run, "\xe2\x96\x81", 3) == 0) {
					put(&k, s + i, run);
					put(&k, " ", 1);
					i += run + 3;
					run = 0;
				} else {
					run++;
				}
			}
			put(&k, s + i, run);
		}
	} else if (e->attr & TA_BYTE) {
		if (e->attr & TA_BYTE_OK)
			put(&k, (const char *)&e->byte, 1);
		else
			put(&k, s, e->len);
	}
	return k.n;
}

size_t tokenizer_piece(const struct tokenizer *t, int32_t id, bool special, char *buf, size_t cap)
{
	return piece_range(t, id, special, 0, buf, cap);
}

size_t tokenizer_detok_cap(const struct tokenizer *t)
{
	/* Worst case: 3 held bytes + the piece, every byte becoming U+FFFD. */
	return 3 * (t->max_piece + 3);
}

void detok_init(struct detok *d)
{
	memset(d, 0, sizeof(*d));
}

struct wr {
	char *out;
	size_t cap;
	size_t n;
	bool full;      /* something was dropped: write nothing more */
};

static void wr_char(struct wr *w, const unsigned char *s, size_t len)
{
	if (w->full || w->n + len > w->cap) {
		w->full = true;
		return;
	}
	memcpy(w->out + w->n, s, len);
	w->n += len;
}

/* Emit the complete characters of work[0..n); return how many bytes at the end
 * form an incomplete (but so far valid) character. */
static size_t drain(struct wr *w, const unsigned char *work, size_t n)
{
	static const unsigned char fffd[3] = { 0xef, 0xbf, 0xbd };
	size_t i = 0;
	while (i < n) {
		size_t len;
		switch (unicode_utf8_check(work + i, n - i, &len)) {
		case UNICODE_UTF8_OK:
			wr_char(w, work + i, len);
			i += len;
			break;
		case UNICODE_UTF8_INVALID:
			wr_char(w, fffd, 3);
			i += len;
			break;
		case UNICODE_UTF8_INCOMPLETE:
			return n - i;
		}
	}
	return 0;
}

size_t detok_push(const struct tokenizer *t, struct detok *d, int32_t id, char *out, size_t cap)
{
	struct wr w = { out, cap, 0, false };
	/* Work in chunks so that long pieces need no allocation: a chunk is the
	 * carried incomplete tail (<= 3 bytes) followed by the next piece bytes. */
	unsigned char work[3 + 256];
	size_t carry = (size_t)(d->n_pend > 0 && d->n_pend <= 3 ? d->n_pend : 0);
	memcpy(work, d->pend, carry);
	size_t total = piece_range(t, id, false, 0, NULL, 0);
	size_t done = 0;
	do {
		size_t chunk = total - done < 256 ? total - done : 256;
		if (chunk)
			piece_range(t, id, false, done, (char *)work + carry, chunk);
		done += chunk;
		size_t n = carry + chunk;
		size_t tail = drain(&w, work, n);
		memmove(work, work + n - tail, tail);
		carry = tail;
	} while (done < total);
	memcpy(d->pend, work, carry);
	d->n_pend = (int)carry;
	return w.n;
}

size_t detok_flush(struct detok *d, char *out, size_t cap)
{
	size_t n = 0;
	if (d->n_pend > 0 && cap >= 3) {
		/* A held tail is a proper prefix of one character: one U+FFFD. */
		memcpy(out, "\xef\xbf\xbd", 3);
		n = 3;
	}
	d->n_pend = 0;
	return n;
}
