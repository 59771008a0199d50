/* tokenizer_encode.c - text to ids: special-token pre-split, SPM tokenizer.
 *
 * Special tokens (llama.cpp tokenizer_st_partition): the CONTROL, USER_DEFINED
 * and UNKNOWN token texts are cut out of the input before any other processing,
 * longest text first, each over every still-unconsumed part of the input,
 * leftmost-first and non-overlapping.  With parse_special=false only the
 * USER_DEFINED ones are.  LSTRIP/RSTRIP tokens also swallow adjacent ASCII
 * whitespace.  What remains are raw fragments, tokenised one by one.
 *
 * llama.cpp does this with one string search per special token over a linked
 * list of fragments, which costs O(#specials x input) (Gemma has 6,400 special
 * tokens).  We compute the same result faster:
 *   1. one pass over the input with a trie of the special texts notes, for each
 *      special token, its first and last occurrence (most never occur);
 *   2. for the occurring ones in priority order, memmem() between those bounds
 *      finds candidates; a candidate is taken if all its bytes are still raw.
 *      "Next raw byte at or after p" is a union-find over positions, so blocked
 *      regions are skipped in near-constant time.
 * Taking a leftmost candidate and resuming after it (or after the whitespace it
 * strips) is exactly what repeated std::string::find over the fragments does.
 *
 * SPM (llm_tokenizer_spm_session): the fragment, with spaces replaced by U+2581
 * (and a leading space if add_space_prefix and it follows the start or a special
 * token), is split into UTF-8 "characters" by lead byte; adjacent pairs whose
 * concatenation is a token are queued by that token's score (highest first,
 * leftmost on ties) and merged until the queue is empty.  Each final symbol is
 * its token, or one byte token per byte.
 */
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/tokenizer_heap.h"

#include <stdlib.h>
#include <string.h>

#include "unicode/unicode.h"

void *tok_scratch_get(struct tok_scratch *s, int i, size_t n)
{
	if (n <= s->cap[i])
		return s->buf[i];
	size_t c = s->cap[i] ? s->cap[i] : 256;
	while (c < n)
		c *= 2;
	void *p = realloc(s->buf[i], c);
	if (!p)
		return NULL;
	s->buf[i] = p;
	s->cap[i] = c;
	return p;
}

void tok_scratch_free(struct tok_scratch *s)
{
	for (int i = 0; i < TOK_SCRATCH_SLOTS; i++)
		free(s->buf[i]);
}

/* ------------------------------------------------------------------------- */
/* special-token pre-split                                                   */

struct frag {
	uint32_t off, len;      /* raw text span, if id < 0 */
	int32_t id;             /* special token */
};

struct match {
	uint32_t pos;
	int32_t id;
};

static int match_cmp(const void *a, const void *b)
{
	const struct match *x = a, *y = b;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Union-find "next raw position >= p"; parent[p] == p means p is raw. */
static uint32_t next_raw(uint32_t *parent, uint32_t p)
{
	while (parent[p] != p) {
		parent[p] = parent[parent[p]];  /* path halving */
		p = parent[p];
	}
	return p;
}

static bool is_ascii_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static const struct tok_trie_node *trie_child(const struct tokenizer *t,
					      const struct tok_trie_node *n, unsigned char c)
{
	uint32_t lo = n->child, hi = n->child + n->n_child;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (t->trie[mid].byte < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n->child + n->n_child && t->trie[lo].byte == c ? &t->trie[lo] : NULL;
}

static bool special_enabled(const struct tokenizer *t, int32_t id, bool parse_special)
{
	return parse_special || !(t->tok[id].attr & (TA_CONTROL | TA_UNKNOWN));
}

/* Split text into fragments; *frags points into scratch.  Returns 0 or -ENOMEM. */
static int presplit(const struct tokenizer *t, const char *text, uint32_t len, bool parse_special,
		    struct tok_scratch *s, struct frag **frags, size_t *n_frags)
{
	const unsigned char *u = (const unsigned char *)text;
	uint32_t *first = NULL, *last = NULL;
	bool any = false;

	/* 1. Which special tokens occur, and where first and last. */
	if (t->n_special) {
		first = tok_scratch_get(s, SCR_MATCH, sizeof(uint32_t) * 2 * (size_t)t->n_special);
		if (!first)
			return -ENOMEM;
		last = first + t->n_special;
		memset(first, 0xff, sizeof(uint32_t) * t->n_special);
		for (uint32_t p = 0; p < len; p++) {
			const struct tok_trie_node *n = &t->trie[0];
			for (uint32_t q = p; q < len && (n = trie_child(t, n, u[q])); q++) {
				if (n->special < 0 ||
				    !special_enabled(t, t->special[n->special], parse_special))
					continue;
				if (first[n->special] == TOK_NONE)
					first[n->special] = p;
				last[n->special] = p;
				any = true;
			}
		}
	}
	if (!any) {
		struct frag *f = tok_scratch_get(s, SCR_FRAG, sizeof(*f));
		if (!f)
			return -ENOMEM;
		f->off = 0, f->len = len, f->id = -1;
		*frags = f;
		*n_frags = 1;
		return 0;
	}

	/* 2. Take occurrences in priority order.  first/last live in SCR_MATCH, so
	 * the match list goes to SCR_FRAG for now. */
	uint32_t *parent = tok_scratch_get(s, SCR_PARENT, sizeof(uint32_t) * ((size_t)len + 1));
	if (!parent)
		return -ENOMEM;
	for (uint32_t p = 0; p <= len; p++)
		parent[p] = p;
	size_t n_match = 0;
	struct match *m = NULL;
	for (uint32_t k = 0; k < t->n_special; k++) {
		if (first[k] == TOK_NONE)
			continue;
		const int32_t id = t->special[k];
		const struct tok_entry *e = &t->tok[id];
		const char *needle = t->arena + e->off;
		const uint32_t L = e->len, stop = last[k] + L;
		uint32_t p = first[k];
		while (p + L <= stop) {
			const char *hit = memmem(text + p, stop - p, needle, L);
			if (!hit)
				break;
			p = (uint32_t)(hit - text);
			uint32_t r = next_raw(parent, p);
			if (r != p) {           /* starts inside consumed text */
				p = r;
				continue;
			}
			uint32_t q = p + 1;
			while (q < p + L && parent[q] == q)
				q++;
			if (q < p + L) {        /* runs into consumed text at q */
				p = next_raw(parent, q);
				continue;
			}
			m = tok_scratch_get(s, SCR_FRAG, sizeof(*m) * (n_match + 1));
			if (!m)
				return -ENOMEM;
			m[n_match++] = (struct match){ p, id };
			uint32_t a = p, b = p + L;
			if (e->attr & TA_LSTRIP)
				while (a > 0 && parent[a - 1] == a - 1 && is_ascii_space(u[a - 1]))
					a--;
			if (e->attr & TA_RSTRIP)
				while (b < len && parent[b] == b && is_ascii_space(u[b]))
					b++;
			for (uint32_t i = a; i < b; i++)
				parent[i] = b;
			p = next_raw(parent, b);
		}
	}
	m = s->buf[SCR_FRAG];
	if (n_match == 0) {
		struct frag *f = tok_scratch_get(s, SCR_FRAG, sizeof(*f));
		if (!f)
			return -ENOMEM;
		f->off = 0, f->len = len, f->id = -1;
		*frags = f;
		*n_frags = 1;
		return 0;
	}
	qsort(m, n_match, sizeof(*m), match_cmp);

	/* 3. Fragments: the raw runs between matches, and the matches.  The match
	 * list moves to SCR_MATCH (first/last are no longer needed). */
	struct match *ms = tok_scratch_get(s, SCR_MATCH, sizeof(*ms) * n_match);
	if (!ms)
		return -ENOMEM;
	memcpy(ms, s->buf[SCR_FRAG], sizeof(*ms) * n_match);
	struct frag *f = tok_scratch_get(s, SCR_FRAG, sizeof(*f) * (2 * n_match + 1));
	if (!f)
		return -ENOMEM;
	size_t nf = 0;
	uint32_t p = 0;
	for (size_t i = 0; i <= n_match; i++) {
		uint32_t end = i < n_match ? ms[i].pos : len;
		while (p < end) {
			while (p < end && parent[p] != p)
				p++;
			uint32_t a = p;
			while (p < end && parent[p] == p)
				p++;
			if (p > a)
				f[nf++] = (struct frag){ a, p - a, -1 };
		}
		if (i < n_match) {
			f[nf++] = (struct frag){ 0, 0, ms[i].id };
			p = ms[i].pos + t->tok[ms[i].id].len;
		}
	}
	*frags = f;
	*n_frags = nf;
	return 0;
}

/* Hugging Face `tokenizers` (AddedVocabulary::find_matches): one scan, at each
 * position the longest added token that starts there (leftmost-longest, as
 * its Aho-Corasick automaton matches), taken whole; lstrip swallows the
 * whitespace before it (not into the previous match), rstrip the whitespace
 * after it.  Whitespace is Unicode White_Space, as Rust's char::is_whitespace.
 * The scan resumes after what rstrip swallowed. */
static size_t ws_before(const char *text, uint32_t from, uint32_t p)
{
	uint32_t q = p;
	while (q > from) {
		uint32_t c = q - 1;
		while (c > from && ((unsigned char)text[c] & 0xc0) == 0x80 && q - c < 4)
			c--;
		size_t pos = c;
		uint32_t cp = unicode_decode_lenient(text, q, &pos);
		if (pos != q || !(unicode_flags(cp) & UNICODE_WHITESPACE))
			break;
		q = c;
	}
	return p - q;
}

static size_t ws_after(const char *text, uint32_t len, uint32_t p)
{
	size_t q = p;
	while (q < len) {
		size_t pos = q;
		uint32_t cp = unicode_decode_lenient(text, len, &pos);
		if (!(unicode_flags(cp) & UNICODE_WHITESPACE) || cp == UNICODE_REPLACEMENT)
			break;
		q = pos;
	}
	return q - p;
}

static int presplit_hf(const struct tokenizer *t, const char *text, uint32_t len, bool parse_special,
		       struct tok_scratch *s, struct frag **frags, size_t *n_frags)
{
	const unsigned char *u = (const unsigned char *)text;
	size_t nf = 0;
	uint32_t done = 0;      /* end of the last match, strip included */
	struct frag *f = tok_scratch_get(s, SCR_FRAG, sizeof(*f) * 4);
	if (!f)
		return -ENOMEM;
	for (uint32_t p = 0; p < len && t->n_special;) {
		const struct tok_trie_node *n = &t->trie[0];
		int32_t best = -1;
		uint32_t end = 0;
		for (uint32_t q = p; q < len && (n = trie_child(t, n, u[q])); q++) {
			if (n->special >= 0 && special_enabled(t, t->special[n->special], parse_special)) {
				best = t->special[n->special];
				end = q + 1;
			}
		}
		if (best < 0) {
			p++;
			continue;
		}
		uint32_t start = p, stop = end;
		if (t->tok[best].attr & TA_LSTRIP)
			start -= (uint32_t)ws_before(text, done, start);
		if (t->tok[best].attr & TA_RSTRIP)
			stop += (uint32_t)ws_after(text, len, stop);
		/* Room for a raw fragment and the match (and a final raw one). */
		if (!(f = tok_scratch_get(s, SCR_FRAG, sizeof(*f) * (nf + 3))))
			return -ENOMEM;
		if (start > done)
			f[nf++] = (struct frag){ done, start - done, -1 };
		f[nf++] = (struct frag){ 0, 0, best };
		done = p = stop;
	}
	if (len > done)
		f[nf++] = (struct frag){ done, len - done, -1 };
	*frags = f;
	*n_frags = nf;
	return 0;
}

/* ------------------------------------------------------------------------- */
/* SPM                                                                       */

struct spm_sym {
	int32_t prev, next;
	uint32_t off, n;
};

struct spm_bigram {
	float score;
	int32_t left, right;
	uint32_t size;
};

/* Max-heap order: higher score first, then lower left index. */
static bool spm_before(const struct spm_bigram *a, const struct spm_bigram *b)
{
	return a->score > b->score || (a->score == b->score && a->left < b->left);
}

TOK_HEAP(spm_heap, struct spm_bigram, spm_before, SCR_C)

static int spm_try_add(const struct tokenizer *t, const char *text, struct spm_sym *sym,
		       struct spm_heap *q, int32_t left, int32_t right)
{
	if (left < 0 || right < 0)
		return 0;
	uint32_t size = sym[left].n + sym[right].n;
	int32_t id = tok_lookup(t, text + sym[left].off, size);
	if (id < 0)
		return 0;
	return spm_heap_push(q, (struct spm_bigram){ t->tok[id].score, left, right, size });
}

static void spm_emit_bytes(const struct tokenizer *t, const char *s, size_t n, struct tok_out *o)
{
	for (size_t j = 0; j < n; j++) {
		int32_t id = t->byte_tok[(unsigned char)s[j]];
		/* llama.cpp throws here; we fall back to <unk> (or drop the byte). */
		if (id < 0)
			id = t->unk;
		if (id >= 0)
			tok_emit(o, id);
	}
}

static int spm_fragment(const struct tokenizer *t, const char *raw, uint32_t len, bool prefix,
			struct tok_scratch *s, struct tok_out *o)
{
	/* Escaped text: optional leading space, every ' ' as U+2581 (3 bytes). */
	size_t cap = 3 * ((size_t)len + 1);
	char *text = tok_scratch_get(s, SCR_A, cap);
	if (!text)
		return -ENOMEM;
	size_t m = 0;
	if (prefix) {
		memcpy(text, "\xe2\x96\x81", 3);
		m = 3;
	}
	for (uint32_t i = 0; i < len; i++) {
		if (raw[i] == ' ') {
			memcpy(text + m, "\xe2\x96\x81", 3);
			m += 3;
		} else {
			text[m++] = raw[i];
		}
	}

	/* Count the characters first: lead bytes may swallow parts of an U+2581,
	 * so there can be more characters than input bytes. */
	size_t count = 0;
	for (size_t off = 0; off < m; count++)
		off += unicode_lead_len((unsigned char)text[off]);
	struct spm_sym *sym = tok_scratch_get(s, SCR_B, sizeof(*sym) * count);
	if (!sym)
		return -ENOMEM;
	int32_t n_sym = 0;
	for (size_t off = 0; off < m;) {
		size_t n = unicode_lead_len((unsigned char)text[off]);
		if (n > m - off)
			n = m - off;
		sym[n_sym] = (struct spm_sym){ n_sym - 1, off + n == m ? -1 : n_sym + 1,
					       (uint32_t)off, (uint32_t)n };
		n_sym++;
		off += n;
	}

	struct spm_heap q = { s, NULL, 0 };
	int rc;
	for (int32_t i = 1; i < n_sym; i++)
		if ((rc = spm_try_add(t, text, sym, &q, i - 1, i)))
			return rc;
	while (q.n) {
		struct spm_bigram b = spm_heap_pop(&q);
		struct spm_sym *l = &sym[b.left], *r = &sym[b.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
			continue;       /* stale: one side was merged since */
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			sym[r->next].prev = b.left;
		if ((rc = spm_try_add(t, text, sym, &q, l->prev, b.left)) ||
		    (rc = spm_try_add(t, text, sym, &q, b.left, l->next)))
			return rc;
	}

	for (int32_t i = 0; i != -1 && n_sym > 0; i = sym[i].next) {
		int32_t id = tok_lookup(t, text + sym[i].off, sym[i].n);
		if (id >= 0)
			tok_emit(o, id);
		else
			spm_emit_bytes(t, text + sym[i].off, sym[i].n, o);
	}
	return 0;
}

/* ------------------------------------------------------------------------- */

/* Does this BPE fragment get a leading space?  Every raw fragment starts the
 * input or follows a special token, which is what the Hugging Face pipelines
 * call a segment. */
static bool bpe_prefix(const struct tokenizer *t, const char *text, const struct frag *f)
{
	const char *p = text + f->off;
	bool has = p[0] == ' ' ||
		   (t->escape_ws && f->len >= 3 && memcmp(p, "\xe2\x96\x81", 3) == 0);
	switch (t->prefix) {
	case PREFIX_EVERY:
		return true;
	case PREFIX_MISSING:
		return !has;
	case PREFIX_FIRST:
		return f->off == 0 && !has;
	case PREFIX_NONE:
		break;
	}
	return false;
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len,
		     bool add_special, bool parse_special,
		     int32_t *out, size_t cap, size_t *n_out, struct smk_err *err)
{
	struct tok_out o = { out, cap, 0 };
	struct tok_scratch s = { { NULL }, { 0 } };
	int rc = 0;

	*n_out = 0;
	/* Keeps every index below (3 bytes per escaped space) within int32. */
	if (len >= (1u << 28))
		return smk_fail(err, -E2BIG, "text of %zu bytes is too long to tokenize (max 256 MiB)", len);

	if (add_special && t->add_bos)
		tok_emit(&o, t->bos);
	if (len > 0) {
		struct frag *f;
		size_t nf;
		rc = t->hf ? presplit_hf(t, text, (uint32_t)len, parse_special, &s, &f, &nf) :
			     presplit(t, text, (uint32_t)len, parse_special, &s, &f, &nf);
		if (rc)
			goto out;
		bool prev_special = true;       /* SPM: a space prefix at the start */
		for (size_t i = 0; i < nf; i++) {
			if (f[i].id >= 0) {
				tok_emit(&o, f[i].id);
				prev_special = true;
				continue;
			}
			if (t->kind == TOK_SPM)
				rc = spm_fragment(t, text + f[i].off, f[i].len,
						  t->add_space_prefix && prev_special, &s, &o);
			else
				rc = tok_bpe_fragment(t, text + f[i].off, f[i].len,
						      bpe_prefix(t, text, &f[i]), &s, &o);
			if (rc)
				goto out;
			prev_special = false;
		}
	}
	if (add_special && t->add_eos)
		tok_emit(&o, t->eos);
out:
	tok_scratch_free(&s);
	if (rc == -ENOMEM)
		return smk_fail(err, -ENOMEM, "out of memory tokenizing %zu bytes", len);
	if (rc)
		return rc;
	*n_out = o.n;
	if (o.n > cap)
		return smk_fail(err, -ENOSPC, "text needs %zu tokens, room for %zu", o.n, cap);
	return 0;
}
