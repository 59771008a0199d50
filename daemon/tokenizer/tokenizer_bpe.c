/* tokenizer_bpe.c - byte-level BPE ("gpt2"): pre-tokenizers and merges.
 *
 * A raw fragment is decoded to code points (invalid UTF-8 bytes become U+FFFD,
 * as in llama.cpp's unicode_cpts_from_utf8), split into words by the model's
 * pre-tokenizer, and each word is re-encoded as UTF-8 and merged.  Merging works
 * on the word's bytes: GPT-2's bytes_to_unicode maps every byte to one character,
 * so llama.cpp's "characters of the byte-encoded word" are exactly our bytes.
 * Pairs merge lowest rank first (leftmost on ties); with ignore_merges a word that
 * is itself a token is emitted whole.  A final symbol that is not a token falls
 * back, like llama.cpp, to the tokens of the single bytes of its encoded text
 * (dropping those that do not exist).
 *
 * The splitters below are transcriptions of llama.cpp's hand-written matchers in
 * unicode.cpp (unicode_regex_split_custom_gpt2/_llama3/_qwen2/_qwen35) and of the
 * std::regex fallbacks it uses for the simple patterns ([\p{P}...]+, \p{N}+,
 * \p{N}, [0-9][0-9][0-9]) and for gpt-4o's lookahead regex, including their
 * quirks (e.g. a non-letter prefix before letters may be a space or a symbol;
 * "\s+(?!\S)" leaves the last space of a run for the next word).  Each splitter
 * turns a list of segment lengths (in code points) into a finer list, as
 * llama.cpp's offsets pipeline does.
 */
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/tokenizer_heap.h"

#include <stdlib.h>
#include <string.h>

#include "unicode/unicode.h"

/* ------------------------------------------------------------------------- */
/* splitters                                                                 */

#define OOR 0xFFFFFFFFu  /* "outside the segment", never equal to a code point */

struct seg {
	const uint32_t *cps;
	size_t ini, end;        /* current segment [ini, end) */
	size_t prev_end;
	uint32_t *out;
	size_t n_out;
};

static inline uint32_t cpt_at(const struct seg *s, size_t p)
{
	return p >= s->ini && p < s->end ? s->cps[p] : OOR;
}

/* Flags of the code point at p; 0 (no flag at all) outside the segment. */
static inline uint16_t flags_at(const struct seg *s, size_t p)
{
	return p >= s->ini && p < s->end ? unicode_flags(s->cps[p]) : 0;
}

static size_t add_token(struct seg *s, size_t end)
{
	size_t len = end - s->prev_end;
	if (len > 0)
		s->out[s->n_out++] = (uint32_t)len;
	s->prev_end = end;
	return len;
}

static uint32_t ascii_lower(uint32_t c)
{
	/* Only ASCII letters lower-case into s/t/m/d/r/e/v/l (checked by
	 * scripts/gen-unicode-tables.py), so this equals unicode_tolower here. */
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

#define IS_WS(f) ((f) & UNICODE_WHITESPACE)
#define IS_NUM(f) ((f) & UNICODE_NUMBER)

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t split_gpt2(const uint32_t *cps, const uint32_t *in, size_t n_in, uint32_t *out)
{
	struct seg s = { cps, 0, 0, 0, out, 0 };
	size_t start = 0;
	for (size_t k = 0; k < n_in; k++) {
		s.ini = s.prev_end = start;
		s.end = start + in[k];
		start = s.end;
		for (size_t pos = s.ini; pos < s.end;) {
			const uint32_t cpt = cpt_at(&s, pos);
			const uint16_t flags = flags_at(&s, pos);

			if (cpt == '\'' && pos + 1 < s.end) {
				uint32_t n1 = cpt_at(&s, pos + 1);
				if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
					pos += add_token(&s, pos + 2);
					continue;
				}
				if (pos + 2 < s.end) {
					uint32_t n2 = cpt_at(&s, pos + 2);
					if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') ||
					    (n1 == 'l' && n2 == 'l')) {
						pos += add_token(&s, pos + 3);
						continue;
					}
				}
			}
			uint16_t f2 = cpt == ' ' ? flags_at(&s, pos + 1) : flags;
			if (f2 & UNICODE_LETTER) {
				pos += cpt == ' ';
				while (f2 & UNICODE_LETTER)
					f2 = flags_at(&s, ++pos);
				add_token(&s, pos);
				continue;
			}
			if (IS_NUM(f2)) {
				pos += cpt == ' ';
				while (IS_NUM(f2))
					f2 = flags_at(&s, ++pos);
				add_token(&s, pos);
				continue;
			}
			if (!(f2 & (UNICODE_WHITESPACE | UNICODE_LETTER | UNICODE_NUMBER)) && f2) {
				pos += cpt == ' ';
				while (!(f2 & (UNICODE_WHITESPACE | UNICODE_LETTER | UNICODE_NUMBER)) && f2)
					f2 = flags_at(&s, ++pos);
				add_token(&s, pos);
				continue;
			}
			size_t nws = 0;
			while (IS_WS(flags_at(&s, pos + nws)))
				nws++;
			if (nws > 1 && cpt_at(&s, pos + nws) != OOR) {    /* \s+(?!\S) */
				pos += nws - 1;
				add_token(&s, pos);
				continue;
			}
			if (nws > 0) {
				pos += nws;
				add_token(&s, pos);
				continue;
			}
			add_token(&s, ++pos);           /* no match */
		}
	}
	return s.n_out;
}

/* Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *          ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * Qwen2: \p{N} instead of \p{N}{1,3} (max_digits 1).  Qwen3.5: additionally
 * [\p{L}\p{M}] where Llama 3 has \p{L} (letters = LETTER|MARK). */
static size_t split_llama3(const uint32_t *cps, const uint32_t *in, size_t n_in, uint32_t *out,
			   int max_digits, uint16_t letters)
{
	const uint16_t wln = UNICODE_WHITESPACE | letters | UNICODE_NUMBER;
	struct seg s = { cps, 0, 0, 0, out, 0 };
	size_t start = 0;
	for (size_t k = 0; k < n_in; k++) {
		s.ini = s.prev_end = start;
		s.end = start + in[k];
		start = s.end;
		for (size_t pos = s.ini; pos < s.end;) {
			const uint32_t cpt = cpt_at(&s, pos);
			const uint16_t flags = flags_at(&s, pos);

			if (cpt == '\'' && pos + 1 < s.end) {
				uint32_t n1 = ascii_lower(cpt_at(&s, pos + 1));
				if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
					pos += add_token(&s, pos + 2);
					continue;
				}
				if (pos + 2 < s.end) {
					uint32_t n2 = ascii_lower(cpt_at(&s, pos + 2));
					if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') ||
					    (n1 == 'l' && n2 == 'l')) {
						pos += add_token(&s, pos + 3);
						continue;
					}
				}
			}
			/* [^\r\n\p{L}\p{N}]?\p{L}+ */
			if (!(cpt == '\r' || cpt == '\n' || IS_NUM(flags))) {
				if ((flags & letters) || (flags_at(&s, pos + 1) & letters)) {
					pos++;
					while (flags_at(&s, pos) & letters)
						pos++;
					add_token(&s, pos);
					continue;
				}
			}
			if (IS_NUM(flags)) {
				if (max_digits == 1) {
					add_token(&s, ++pos);
					continue;
				}
				size_t ini = pos;
				while (IS_NUM(flags_at(&s, pos))) {
					if (++pos - ini >= (size_t)max_digits) {
						add_token(&s, pos);
						ini = pos;
					}
				}
				add_token(&s, pos);
				continue;
			}
			/* <space>?[^\s\p{L}\p{N}]+[\r\n]*  (llama.cpp tests `flags`, not
			 * `f2`, for "is inside the segment" on entry) */
			uint16_t f2 = cpt == ' ' ? flags_at(&s, pos + 1) : flags;
			if (!(f2 & wln) && flags) {
				pos += cpt == ' ';
				while (!(f2 & wln) && f2)
					f2 = flags_at(&s, ++pos);
				uint32_t c2 = cpt_at(&s, pos);
				while (c2 == '\r' || c2 == '\n')
					c2 = cpt_at(&s, ++pos);
				add_token(&s, pos);
				continue;
			}
			size_t nws = 0, last_rn = 0;
			while (IS_WS(flags_at(&s, pos + nws))) {
				uint32_t c2 = cpt_at(&s, pos + nws);
				if (c2 == '\r' || c2 == '\n')
					last_rn = pos + nws + 1;
				nws++;
			}
			if (last_rn > 0) {              /* \s*[\r\n]+ */
				pos = last_rn;
				add_token(&s, pos);
				continue;
			}
			if (nws > 1 && cpt_at(&s, pos + nws) != OOR) {    /* \s+(?!\S) */
				pos += nws - 1;
				add_token(&s, pos);
				continue;
			}
			if (nws > 0) {                  /* \s+ */
				pos += nws;
				add_token(&s, pos);
				continue;
			}
			add_token(&s, ++pos);
		}
	}
	return s.n_out;
}

/* gpt-4o (o200k; also llama4, kanana2, talkie, minimax-m2).  llama.cpp has no
 * hand-written matcher for this regex: it runs std::regex (ECMAScript,
 * backtracking) over the "collapsed" text, where every code point >= 128 is one
 * byte for its category (whitespace 0x0B, letter 0xD2, number 0xD1, ...) and the
 * \p{..} classes are rewritten to match those bytes.  Its rewrite of the
 * original \p{Lu}/\p{Ll} classes is
 *
 *   [^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+C?
 *  |[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*C?
 *  |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *
 * with C = '[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD].  So an
 * "upper" letter is A-Z or any non-ASCII letter, a "lower" one a-z or any
 * non-ASCII letter (those are both), marks are not letters, and \s is the C
 * locale's six ASCII spaces plus every collapsed Unicode space.  Below is that
 * regex's ECMAScript match, alternative by alternative:
 *   alt 1: after the optional prefix, U* takes the longest run of uppers and
 *          gives back until a lower follows (the last non-ASCII letter of the
 *          run, if any, as it is lower too), then W+ takes every lower:
 *          "ÉCOLE" -> "É" "COLE", "ÉcoleÉcole" one piece, "HELLOworld" one;
 *   alt 2: reached only when no lower follows any prefix of the upper run,
 *          i.e. a run of A-Z alone ("COLE", "I'm");
 *   alt 3-7 as in Llama 3, with '/' also ending a punctuation run.
 * Every code point starts a match, so no text is left between matches. */
enum {
	G4_UP = 1,              /* A-Z or a non-ASCII letter */
	G4_LO = 2,              /* a-z or a non-ASCII letter */
	G4_NUM = 4,             /* 0-9 or \p{N} */
	G4_SP = 8,              /* \s: ASCII \t\n\v\f\r and space, Unicode whitespace */
	G4_RN = 16,             /* \r or \n */
};

/* The class of cps[p]; 0 (punctuation, symbols, marks, ...) also outside the
 * segment, where the callers test positions before use. */
static uint8_t g4_class(uint32_t cp)
{
	if (cp < 128) {
		if (cp >= 'a' && cp <= 'z')
			return G4_LO;
		if (cp >= 'A' && cp <= 'Z')
			return G4_UP;
		if (cp >= '0' && cp <= '9')
			return G4_NUM;
		if (cp == '\r' || cp == '\n')
			return G4_SP | G4_RN;
		return cp == ' ' || cp == '\t' || cp == '\v' || cp == '\f' ? G4_SP : 0;
	}
	uint16_t f = unicode_flags(cp);
	if (f & UNICODE_WHITESPACE)
		return G4_SP;
	switch (f & UNICODE_CATEGORY_MASK) {
	case UNICODE_LETTER:
		return G4_UP | G4_LO;
	case UNICODE_NUMBER:
		return G4_NUM;
	default:
		return 0;
	}
}

#define G4_LETTER (G4_UP | G4_LO)
#define G4_OTHER(c) (!((c) & (G4_SP | G4_LETTER | G4_NUM)))  /* [^\s\p{L}\p{N}] */

/* '[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD] at p: its length or 0. */
static size_t g4_contraction(const uint32_t *cps, size_t p, size_t end)
{
	if (p + 1 >= end || cps[p] != '\'')
		return 0;
	uint32_t n1 = ascii_lower(cps[p + 1]);
	if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd')
		return 2;
	if (p + 2 >= end)
		return 0;
	uint32_t n2 = ascii_lower(cps[p + 2]);
	if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l'))
		return 3;
	return 0;
}

/* The end of the match starting at pos in [pos, end). */
static size_t g4_match(const uint32_t *cps, size_t pos, size_t end)
{
	uint8_t c = g4_class(cps[pos]);
#define CLS(p) ((p) < end ? g4_class(cps[p]) : 0)
	/* alternatives 1 and 2: [^\r\n\p{L}\p{N}]? then letters */
	size_t p0 = end;
	if (c & G4_LETTER)
		p0 = pos;
	else if (!(c & (G4_RN | G4_NUM)) && (CLS(pos + 1) & G4_LETTER))
		p0 = pos + 1;
	if (p0 < end) {
		size_t m = 0;
		while (CLS(p0 + m) & G4_UP)
			m++;
		size_t k = m + 1, q;
		while (k-- > 0 && !(CLS(p0 + k) & G4_LO))
			;
		if (k <= m) {                   /* U{k} W+ */
			q = p0 + k;
			while (CLS(q) & G4_LO)
				q++;
		} else {                        /* U+ (W* is empty here) */
			q = p0 + m;
		}
		return q + g4_contraction(cps, q, end);
	}
	if (c & G4_NUM) {                       /* \p{N}{1,3} */
		size_t q = pos + 1;
		while (q < end && q - pos < 3 && (CLS(q) & G4_NUM))
			q++;
		return q;
	}
	size_t s = cps[pos] == ' ' ? pos + 1 : pos;
	if (s < end && G4_OTHER(CLS(s))) {      /*  ?[^\s\p{L}\p{N}]+[\r\n/]* */
		size_t q = s;
		while (q < end && G4_OTHER(CLS(q)))
			q++;
		while (q < end && (cps[q] == '\r' || cps[q] == '\n' || cps[q] == '/'))
			q++;
		return q;
	}
	if (c & G4_SP) {
		size_t q = pos, last_rn = 0;
		while (CLS(q) & G4_SP) {
			if (CLS(q) & G4_RN)
				last_rn = q + 1;
			q++;
		}
		if (last_rn)                    /* \s*[\r\n]+ */
			return last_rn;
		if (q < end && q - pos > 1)     /* \s+(?!\S) */
			return q - 1;
		return q;                       /* \s+ */
	}
#undef CLS
	return pos + 1;                         /* unreachable: every class matches */
}

/* Split each run in[k] of cps into the matches of `match` (which returns
 * the end of the match at pos, never beyond end); their lengths into out. */
static size_t split_runs(const uint32_t *cps, const uint32_t *in, size_t n_in, uint32_t *out,
			 size_t (*match)(const uint32_t *cps, size_t pos, size_t end))
{
	size_t n_out = 0, start = 0;
	for (size_t k = 0; k < n_in; k++) {
		size_t pos = start, end = start + in[k];
		start = end;
		while (pos < end) {
			size_t q = match(cps, pos, end);
			out[n_out++] = (uint32_t)(q - pos);
			pos = q;
		}
	}
	return n_out;
}

size_t tok_split_gpt4o(const uint32_t *cps, const uint32_t *in, size_t n_in, uint32_t *out)
{
	return split_runs(cps, in, n_in, out, g4_match);
}

/* o200k exactly (PRE_O200K): the regex of tiktoken's o200k_base, as
 * Hugging Face `tokenizers` (Oniguruma) and tiktoken (fancy-regex) run it on
 * code points, for gpt-oss's / gpt-4o's tokenizer.json:
 *
 *   [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:C)?
 *  |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:C)?
 *  |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *
 * with C = 's|'t|'re|'ve|'m|'ll|'d.  Unlike llama.cpp's rewrite (above), an
 * "upper" (U) is Lu, Lt, Lm, Lo or a mark and a "lower" (W) is Ll, Lm, Lo or a
 * mark (so Lm, Lo and marks are both, Lu/Lt and Ll one each), marks are no
 * \p{L} (so a mark may be the optional prefix, and belongs to punctuation
 * runs), and \s is White_Space.  Leftmost-first backtracking order: alternative
 * 1 with the prefix, then without it, then alternative 2 likewise, ... */
enum {
	O2_U = 1,               /* [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] */
	O2_W = 2,               /* [\p{Ll}\p{Lm}\p{Lo}\p{M}] */
	O2_L = 4,               /* \p{L} */
	O2_N = 8,               /* \p{N} */
	O2_SP = 16,             /* \s */
	O2_RN = 32,             /* \r or \n */
};

static unsigned o2_case(uint32_t cp)
{
	size_t lo = 0, hi = tok_case_ranges_n;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if ((tok_case_ranges[mid] >> 2) <= cp)
			lo = mid;
		else
			hi = mid;
	}
	return (tok_case_ranges[lo] >> 2) <= cp ? tok_case_ranges[lo] & 3 : 0;
}

static uint8_t o2_class(uint32_t cp)
{
	if (cp < 128) {
		if (cp >= 'a' && cp <= 'z')
			return O2_W | O2_L;
		if (cp >= 'A' && cp <= 'Z')
			return O2_U | O2_L;
		if (cp >= '0' && cp <= '9')
			return O2_N;
		if (cp == '\r' || cp == '\n')
			return O2_SP | O2_RN;
		return (unicode_flags(cp) & UNICODE_WHITESPACE) ? O2_SP : 0;
	}
	uint16_t f = unicode_flags(cp);
	uint8_t c = (f & UNICODE_WHITESPACE) ? O2_SP : 0;
	switch (f & UNICODE_CATEGORY_MASK) {
	case UNICODE_LETTER:
		switch (o2_case(cp)) {
		case 1:
			return c | O2_L | O2_U;
		case 2:
			return c | O2_L | O2_W;
		default:
			return c | O2_L | O2_U | O2_W;
		}
	case UNICODE_MARK:
		return c | O2_U | O2_W;
	case UNICODE_NUMBER:
		return c | O2_N;
	default:
		return c;
	}
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d) at p: its length or 0.  Oniguruma and
 * fancy-regex match case-insensitively by Unicode simple case folding, where
 * besides A-Z only U+017F (long s) folds into one of these letters. */
static uint32_t o2_fold(uint32_t c)
{
	return c == 0x17F ? 's' : ascii_lower(c);
}

static size_t o2_contraction(const uint32_t *cps, size_t p, size_t end)
{
	if (p + 1 >= end || cps[p] != '\'')
		return 0;
	uint32_t n1 = o2_fold(cps[p + 1]);
	if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd')
		return 2;
	if (p + 2 >= end)
		return 0;
	uint32_t n2 = o2_fold(cps[p + 2]);
	if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l'))
		return 3;
	return 0;
}

/* [U]*[W]+C? (alt 1) or, with alt2, [U]+[W]*C? (alt 2) starting at p0: true
 * and the end of the match in *q_out, or false.  The quantifiers are greedy and
 * give back as backtracking would: alt 1 keeps the longest U run after which a
 * W follows. */
static bool o2_letters(const uint32_t *cps, size_t p0, size_t end, bool alt2, size_t *q_out)
{
#define CLS(p) ((p) < end ? o2_class(cps[p]) : 0)
	size_t m = 0, q;
	while (CLS(p0 + m) & O2_U)
		m++;
	if (!alt2) {
		size_t k = m + 1;
		while (k-- > 0 && !(CLS(p0 + k) & O2_W))
			;
		if (k > m)
			return false;
		q = p0 + k;
	} else {
		if (m == 0)
			return false;
		q = p0 + m;
	}
	while (CLS(q) & O2_W)
		q++;
#undef CLS
	*q_out = q + o2_contraction(cps, q, end);
	return true;
}

static size_t o2_match(const uint32_t *cps, size_t pos, size_t end)
{
	uint8_t c = o2_class(cps[pos]);
#define CLS(p) ((p) < end ? o2_class(cps[p]) : 0)
	/* alternatives 1 and 2, each with the optional prefix first */
	bool prefix = !(c & (O2_L | O2_N | O2_RN));
	size_t q;
	for (int alt2 = 0; alt2 < 2; alt2++) {
		if (prefix && pos + 1 < end && o2_letters(cps, pos + 1, end, alt2, &q))
			return q;
		if (o2_letters(cps, pos, end, alt2, &q))
			return q;
	}
	if (c & O2_N) {                         /* \p{N}{1,3} */
		q = pos + 1;
		while (q < end && q - pos < 3 && (CLS(q) & O2_N))
			q++;
		return q;
	}
#define O2_OTHER(k) (!((k) & (O2_SP | O2_L | O2_N)))    /* [^\s\p{L}\p{N}] */
	size_t s = cps[pos] == ' ' ? pos + 1 : pos;
	if (s < end && O2_OTHER(CLS(s))) {      /*  ?[^\s\p{L}\p{N}]+[\r\n/]* */
		q = s;
		while (q < end && O2_OTHER(CLS(q)))
			q++;
		while (q < end && (cps[q] == '\r' || cps[q] == '\n' || cps[q] == '/'))
			q++;
		return q;
	}
#undef O2_OTHER
	if (c & O2_SP) {
		size_t last_rn = 0;
		q = pos;
		while (CLS(q) & O2_SP) {
			if (CLS(q) & O2_RN)
				last_rn = q + 1;
			q++;
		}
		if (last_rn)                    /* \s*[\r\n]+ */
			return last_rn;
		if (q < end && q - pos > 1)     /* \s+(?!\S) */
			return q - 1;
		return q;                       /* \s+ */
	}
#undef CLS
	return pos + 1;                         /* unreachable: every class matches */
}

size_t tok_split_o200k(const uint32_t *cps, const uint32_t *in, size_t n_in, uint32_t *out)
{
	return split_runs(cps, in, n_in, out, o2_match);
}

/* Character classes of the std::regex fallbacks.  llama.cpp runs them on a
 * "collapsed" text where code points >= 128 become one byte per category
 * (whitespace first), so for those only the category matters; ASCII keeps its
 * own characters. */
enum cls { CLS_PUNCT, CLS_PUNCT_FALCON, CLS_NUMBER };

static bool in_class(uint32_t cp, enum cls c)
{
	if (cp < 128) {
		if (c == CLS_NUMBER)
			return cp >= '0' && cp <= '9';
		/* \p{P} in ASCII, plus $+<=>^~| (and ` for Falcon) */
		if (cp && strchr("!\"#%&'()*,-./:;?@[\\]_{}$+<=>^~|", (int)cp))
			return true;
		return c == CLS_PUNCT_FALCON && cp == '`';
	}
	uint16_t f = unicode_flags(cp);
	if (f & UNICODE_WHITESPACE)
		return false;
	uint16_t cat = f & UNICODE_CATEGORY_MASK;
	return cat == (c == CLS_NUMBER ? UNICODE_NUMBER : UNICODE_PUNCT);
}

/* [class]+ (runs) or [class] (single characters): matches and the gaps between
 * them become segments. */
static size_t split_class(const uint32_t *cps, const uint32_t *in, size_t n_in, uint32_t *out,
			  enum cls c, bool single)
{
	size_t n_out = 0, start = 0;
	for (size_t k = 0; k < n_in; k++) {
		size_t ini = start, end = start + in[k], gap = ini;
		start = end;
		for (size_t pos = ini; pos < end;) {
			if (!in_class(cps[pos], c)) {
				pos++;
				continue;
			}
			size_t m = pos + 1;
			while (!single && m < end && in_class(cps[m], c))
				m++;
			if (pos > gap)
				out[n_out++] = (uint32_t)(pos - gap);
			out[n_out++] = (uint32_t)(m - pos);
			pos = gap = m;
		}
		if (end > gap)
			out[n_out++] = (uint32_t)(end - gap);
	}
	return n_out;
}

/* [0-9][0-9][0-9], leftmost non-overlapping matches. */
static size_t split_digits3(const uint32_t *cps, const uint32_t *in, size_t n_in, uint32_t *out)
{
	size_t n_out = 0, start = 0;
	for (size_t k = 0; k < n_in; k++) {
		size_t ini = start, end = start + in[k], gap = ini;
		start = end;
		for (size_t pos = ini; pos < end;) {
			if (pos + 3 <= end && cps[pos] - '0' < 10 && cps[pos + 1] - '0' < 10 &&
			    cps[pos + 2] - '0' < 10) {
				if (pos > gap)
					out[n_out++] = (uint32_t)(pos - gap);
				out[n_out++] = 3;
				pos = gap = pos + 3;
			} else {
				pos++;
			}
		}
		if (end > gap)
			out[n_out++] = (uint32_t)(end - gap);
	}
	return n_out;
}

/* [^\n]+|[\n]+ (Gemma 4): alternating runs of newlines and of everything else. */
static size_t split_newlines(const uint32_t *cps, const uint32_t *in, size_t n_in, uint32_t *out)
{
	size_t n_out = 0, start = 0;
	for (size_t k = 0; k < n_in; k++) {
		size_t pos = start, end = start + in[k];
		start = end;
		while (pos < end) {
			bool nl = cps[pos] == '\n';
			size_t run = pos;
			while (pos < end && (cps[pos] == '\n') == nl)
				pos++;
			out[n_out++] = (uint32_t)(pos - run);
		}
	}
	return n_out;
}

/* Metaspace split=true (HF SplitDelimiterBehavior::MergedWithNext on U+2581):
 * every U+2581 starts a new word, so "\u2581a\u2581\u2581b" -> "\u2581a",
 * "\u2581", "\u2581b". */
static size_t split_metaspace(const uint32_t *cps, const uint32_t *in, size_t n_in, uint32_t *out)
{
	size_t n_out = 0, start = 0;
	for (size_t k = 0; k < n_in; k++) {
		size_t pos = start, end = start + in[k], word = start;
		start = end;
		for (; pos < end; pos++) {
			if (cps[pos] == 0x2581 && pos > word) {
				out[n_out++] = (uint32_t)(pos - word);
				word = pos;
			}
		}
		if (end > word)
			out[n_out++] = (uint32_t)(end - word);
	}
	return n_out;
}

/* Run the model's pipeline; returns the number of word lengths in *words (which
 * points to a or b). */
static size_t pretokenize(const struct tokenizer *t, const uint32_t *cps, size_t n_cp,
			  uint32_t *a, uint32_t *b, uint32_t **words)
{
	size_t n = 1;
	a[0] = (uint32_t)n_cp;
	uint32_t *cur = a, *nxt = b, *tmp;
#define STEP(call) do { n = (call); tmp = cur; cur = nxt; nxt = tmp; } while (0)
	switch (t->pre) {
	case PRE_GPT2:
		STEP(split_gpt2(cps, cur, n, nxt));
		break;
	case PRE_LLAMA3:
		STEP(split_llama3(cps, cur, n, nxt, 3, UNICODE_LETTER));
		break;
	case PRE_QWEN2:
		STEP(split_llama3(cps, cur, n, nxt, 1, UNICODE_LETTER));
		break;
	case PRE_QWEN35:
		STEP(split_llama3(cps, cur, n, nxt, 1, UNICODE_LETTER | UNICODE_MARK));
		break;
	case PRE_STARCODER:
		STEP(split_class(cps, cur, n, nxt, CLS_NUMBER, true));
		STEP(split_gpt2(cps, cur, n, nxt));
		break;
	case PRE_FALCON:
		STEP(split_class(cps, cur, n, nxt, CLS_PUNCT_FALCON, false));
		STEP(split_gpt2(cps, cur, n, nxt));
		STEP(split_digits3(cps, cur, n, nxt));
		break;
	case PRE_GPT4O:
		STEP(tok_split_gpt4o(cps, cur, n, nxt));
		break;
	case PRE_O200K:
		STEP(tok_split_o200k(cps, cur, n, nxt));
		break;
	case PRE_GEMMA4:
		STEP(split_newlines(cps, cur, n, nxt));
		break;
	case PRE_NONE:
		break;
	case PRE_METASPACE:
		STEP(split_metaspace(cps, cur, n, nxt));
		break;
	case PRE_DEFAULT:
		STEP(split_class(cps, cur, n, nxt, CLS_PUNCT, false));
		STEP(split_gpt2(cps, cur, n, nxt));
		STEP(split_class(cps, cur, n, nxt, CLS_NUMBER, false));
		STEP(split_digits3(cps, cur, n, nxt));
		break;
	}
#undef STEP
	*words = cur;
	return n;
}

/* ------------------------------------------------------------------------- */
/* merges                                                                    */

/* The key of a merge lookup; entries are indexes into merges[].  The pair
 * itself is the hash: the index mixes it before masking. */
struct merge_key {
	const struct tok_merge *merges;
	uint32_t l, r;
};

static bool merge_eq(const void *key, int32_t e)
{
	const struct merge_key *k = key;
	return k->merges[e].left == k->l && k->merges[e].right == k->r;
}

static inline uint64_t merge_hash(uint32_t l, uint32_t r)
{
	return (uint64_t)l << 32 | r;
}

static const struct tok_merge *merge_find(const struct tokenizer *t, uint32_t l, uint32_t r)
{
	struct merge_key k = { t->merges, l, r };
	int32_t e = smk_hindex_find(&t->merge_index, merge_hash(l, r), merge_eq, &k);
	return e < 0 ? NULL : &t->merges[e];
}

struct bpe_sym {
	int32_t prev, next;
	uint32_t off;           /* first byte in the word */
	uint32_t n;             /* bytes; 0 once merged into the left neighbour */
	uint32_t ext;           /* extended id of its text, TOK_NONE if none */
};

struct bpe_bigram {
	int32_t rank;
	int32_t left, right;
	uint32_t size;
	uint32_t result;
};

/* Min-heap order: lower rank first, then lower left index. */
static bool bpe_before(const struct bpe_bigram *a, const struct bpe_bigram *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

TOK_HEAP(bpe_heap, struct bpe_bigram, bpe_before, SCR_G)

static int bpe_try_add(const struct tokenizer *t, struct bpe_sym *sym, struct bpe_heap *q,
		       int32_t left, int32_t right)
{
	if (left < 0 || right < 0 || sym[left].ext == TOK_NONE || sym[right].ext == TOK_NONE)
		return 0;
	const struct tok_merge *m = merge_find(t, sym[left].ext, sym[right].ext);
	if (!m)
		return 0;
	return bpe_heap_push(q, (struct bpe_bigram){ m->rank, left, right,
						sym[left].n + sym[right].n, m->result });
}

static uint32_t ext_find(const struct tokenizer *t, const char *s, size_t len);

/* Initial symbols the Hugging Face way (BPE::merge_word in `tokenizers`): a
 * character that is not in the vocabulary becomes one symbol per byte of its
 * text (<0xXX> tokens) with byte_fallback if all of them exist, else <unk>
 * (consecutive ones fused with fuse_unk; a pending <unk> is only written out
 * before the next known character or at the end, as there), else nothing.
 * In byte-level mode a "character" is one GPT-2 mapped byte and its text is
 * the mapped character's UTF-8.  sym has room for 2 * n. */
static int32_t hf_symbols(const struct tokenizer *t, const unsigned char *w, size_t n,
			  struct bpe_sym *sym)
{
	int32_t n_sym = 0;
	uint32_t unk_n = 0;     /* pending <unk>: bytes it covers, 0 if none */
	for (size_t off = 0; off < n;) {
		size_t len = 1;
		uint32_t ext;
		char u[4];
		const char *text = (const char *)w + off;
		size_t text_len = 1;
		if (t->escape_ws) {
			len = unicode_lead_len(w[off]);
			if (len > n - off)
				len = n - off;
			text_len = len;
			ext = ext_find(t, text, len);
		} else {
			ext = t->gpt2_ext[w[off]];
			text_len = unicode_encode(t->gpt2_cp[w[off]], u);
			text = u;
		}
		if (ext < (uint32_t)t->n_vocab) {
			if (unk_n) {
				sym[n_sym++] = (struct bpe_sym){ 0, 0, (uint32_t)off, unk_n,
								 (uint32_t)t->unk };
				unk_n = 0;
			}
			sym[n_sym++] = (struct bpe_sym){ 0, 0, (uint32_t)off, (uint32_t)len, ext };
			off += len;
			continue;
		}
		bool bytes_ok = t->byte_fallback;
		for (size_t k = 0; k < text_len && bytes_ok; k++)
			bytes_ok = t->byte_tok[(unsigned char)text[k]] >= 0;
		if (bytes_ok) {
			for (size_t k = 0; k < text_len; k++)
				sym[n_sym++] = (struct bpe_sym){ 0, 0, (uint32_t)off, 1,
						(uint32_t)t->byte_tok[(unsigned char)text[k]] };
		} else if (t->unk >= 0) {
			if (unk_n && !t->fuse_unk) {
				sym[n_sym++] = (struct bpe_sym){ 0, 0, (uint32_t)off, unk_n,
								 (uint32_t)t->unk };
				unk_n = 0;
			}
			unk_n += (uint32_t)len;
		}
		off += len;
	}
	if (unk_n)
		sym[n_sym++] = (struct bpe_sym){ 0, 0, (uint32_t)n, unk_n, (uint32_t)t->unk };
	for (int32_t i = 0; i < n_sym; i++) {
		sym[i].prev = i - 1;
		sym[i].next = i + 1 < n_sym ? i + 1 : -1;
	}
	return n_sym;
}

static int bpe_word(const struct tokenizer *t, const unsigned char *w, size_t n,
		    struct tok_scratch *s, struct tok_out *o)
{
	if (t->ignore_merges) {
		/* The whole word, as the vocabulary spells it, is a token. */
		const char *enc = (const char *)w;
		size_t m = n;
		if (!t->escape_ws) {
			char *e = tok_scratch_get(s, SCR_E, 2 * n);
			if (!e)
				return -ENOMEM;
			m = 0;
			for (size_t i = 0; i < n; i++)
				m += unicode_encode(t->gpt2_cp[w[i]], e + m);
			enc = e;
		}
		int32_t id = tok_lookup(t, enc, m);
		if (id >= 0) {
			tok_emit(o, id);
			return 0;
		}
	}
	if (t->pre == PRE_GEMMA4) {
		/* Gemma 4: a run of newlines that is a token is emitted whole. */
		size_t k = 0;
		while (k < n && w[k] == '\n')
			k++;
		int32_t id = k == n ? tok_lookup(t, (const char *)w, n) : -1;
		if (id >= 0) {
			tok_emit(o, id);
			return 0;
		}
	}

	/* Initial symbols: GPT-2 mapped bytes, or (SPM-style) UTF-8 characters cut
	 * by lead byte as llama.cpp's unicode_len_utf8 does. */
	struct bpe_sym *sym = tok_scratch_get(s, SCR_F, sizeof(*sym) * 2 * n);
	if (!sym)
		return -ENOMEM;
	int32_t n_sym = 0;
	if (t->hf) {
		n_sym = hf_symbols(t, w, n, sym);
	} else {
		for (size_t off = 0; off < n;) {
			size_t len = 1;
			uint32_t ext = t->gpt2_ext[w[off]];
			if (t->escape_ws) {
				len = unicode_lead_len(w[off]);
				if (len > n - off)
					len = n - off;
				ext = ext_find(t, (const char *)w + off, len);
			}
			sym[n_sym] = (struct bpe_sym){ n_sym - 1, off + len == n ? -1 : n_sym + 1,
						       (uint32_t)off, (uint32_t)len, ext };
			n_sym++;
			off += len;
		}
	}
	struct bpe_heap q = { s, NULL, 0 };
	int rc;
	for (int32_t i = 1; i < n_sym; i++)
		if ((rc = bpe_try_add(t, sym, &q, i - 1, i)))
			return rc;
	while (q.n) {
		struct bpe_bigram b = bpe_heap_pop(&q);
		struct bpe_sym *l = &sym[b.left], *r = &sym[b.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
			continue;       /* stale */
		l->n += r->n;
		l->ext = b.result;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			sym[r->next].prev = b.left;
		if ((rc = bpe_try_add(t, sym, &q, l->prev, b.left)) ||
		    (rc = bpe_try_add(t, sym, &q, b.left, l->next)))
			return rc;
	}
	for (int32_t i = 0; i != -1 && n_sym > 0; i = sym[i].next) {
		if (sym[i].ext < (uint32_t)t->n_vocab) {
			tok_emit(o, (int32_t)sym[i].ext);
			continue;
		}
		const unsigned char *b = w + sym[i].off;
		for (uint32_t j = 0; j < sym[i].n; j++) {
			if (t->escape_ws) {
				if (t->byte_tok[b[j]] >= 0)
					tok_emit(o, t->byte_tok[b[j]]);
				continue;
			}
			for (int k = 0; k < 2; k++)
				if (t->gpt2_fallback[b[j]][k] >= 0)
					tok_emit(o, t->gpt2_fallback[b[j]][k]);
		}
	}
	return 0;
}

int tok_bpe_fragment(const struct tokenizer *t, const char *text, size_t len, bool prefix,
		     struct tok_scratch *s, struct tok_out *o)
{
	if (t->escape_ws || prefix) {
		/* The leading space, then (SPM-style) every ' ' as U+2581, before
		 * anything else. */
		char *esc = tok_scratch_get(s, SCR_H, 3 * len + 3);
		if (!esc)
			return -ENOMEM;
		size_t m = 0;
		for (size_t i = 0; i < len + prefix; i++) {
			char c = prefix ? (i == 0 ? ' ' : text[i - 1]) : text[i];
			if (c == ' ' && t->escape_ws) {
				memcpy(esc + m, "\xe2\x96\x81", 3);
				m += 3;
			} else {
				esc[m++] = c;
			}
		}
		text = esc;
		len = m;
	}
	uint32_t *cps = tok_scratch_get(s, SCR_A, sizeof(uint32_t) * len);
	if (!cps)
		return -ENOMEM;
	size_t n_cp = 0;
	for (size_t pos = 0; pos < len;)
		cps[n_cp++] = unicode_decode_lenient(text, len, &pos);
	if (t->nfc) {
		/* Invalid UTF-8 was read as U+FFFD above, which NFC leaves alone. */
		size_t cap = UNICODE_NFC_MAX_EXPANSION * n_cp;
		uint32_t *nf = tok_scratch_get(s, SCR_I, sizeof(uint32_t) * cap);
		uint32_t *tmp = tok_scratch_get(s, SCR_J, sizeof(uint32_t) * cap);
		if (!nf || !tmp)
			return -ENOMEM;
		n_cp = unicode_nfc(cps, n_cp, nf, tmp);
		cps = nf;
	}
	uint32_t *a = tok_scratch_get(s, SCR_B, sizeof(uint32_t) * (n_cp + 1));
	uint32_t *b = tok_scratch_get(s, SCR_C, sizeof(uint32_t) * (n_cp + 1));
	if (!a || !b)
		return -ENOMEM;

	uint32_t *words;
	size_t n_words = pretokenize(t, cps, n_cp, a, b, &words);
	size_t c = 0;
	for (size_t i = 0; i < n_words; i++) {
		size_t wl = words[i];
		unsigned char *w = tok_scratch_get(s, SCR_D, 4 * wl);
		if (!w)
			return -ENOMEM;
		size_t n = 0;
		for (size_t k = 0; k < wl; k++)
			n += unicode_encode(cps[c + k], (char *)w + n);
		c += wl;
		if (n == 0)
			continue;
		int rc = bpe_word(t, w, n, s, o);
		if (rc)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------------------- */
/* loading                                                                   */

/* The key of a merge-only string lookup: len bytes at s; entries are extra
 * ids - n_vocab. */
struct extra_key {
	const struct tok_extra *x;
	const char *s;
	size_t len;
};

static bool extra_eq(const void *key, int32_t e)
{
	const struct extra_key *k = key;
	return k->x->len[e] == k->len && memcmp(k->x->arena + k->x->off[e], k->s, k->len) == 0;
}

/* Put extra string e (its bytes already stored) in the map, first moving
 * the map to one twice as large if it is full.  0, -ENOMEM or -E2BIG. */
static int extra_put(struct tok_extra *x, uint32_t e)
{
	if (x->map.n == x->map.max) {
		struct smk_hindex m;
		int rc = smk_hindex_init(&m, x->map.max ? 2 * (uint64_t)x->map.max : 512);
		if (rc)
			return rc;
		for (uint32_t i = 0; i < x->map.n; i++) {
			struct extra_key k = { x, x->arena + x->off[i], x->len[i] };
			smk_hindex_put(&m, smk_fnv1a64(k.s, k.len), extra_eq, &k, (int32_t)i);
		}
		smk_hindex_deinit(&x->map);
		x->map = m;
	}
	struct extra_key k = { x, x->arena + x->off[e], x->len[e] };
	smk_hindex_put(&x->map, smk_fnv1a64(k.s, k.len), extra_eq, &k, (int32_t)e);
	return 0;
}

/* Extended id of s (vocabulary id, else merge-only string id); TOK_NONE if none. */
static uint32_t ext_find(const struct tokenizer *t, const char *s, size_t len)
{
	int32_t id = tok_lookup(t, s, len);
	if (id >= 0)
		return (uint32_t)id;
	struct extra_key k = { &t->extra, s, len };
	int32_t e = smk_hindex_find(&t->extra.map, smk_fnv1a64(s, len), extra_eq, &k);
	return e < 0 ? TOK_NONE : (uint32_t)t->n_vocab + (uint32_t)e;
}

/* ext_find, adding s as a new merge-only string if absent and add is set;
 * errors (-ENOMEM, -E2BIG) are reported through *rc. */
static uint32_t ext_id(struct tokenizer *t, const char *s, size_t len, bool add, int *rc)
{
	struct tok_extra *x = &t->extra;
	uint32_t found = ext_find(t, s, len);
	if (found != TOK_NONE)
		return found;
	if (!add)
		return TOK_NONE;
	if ((uint64_t)t->n_vocab + x->n + 1 >= TOK_NONE || x->arena_len + len >= UINT32_MAX) {
		*rc = -E2BIG;
		return TOK_NONE;
	}
	if (x->n == x->cap) {
		uint32_t c = x->cap ? 2 * x->cap : 256;
		uint32_t *o2 = realloc(x->off, sizeof(*o2) * c);
		if (o2)
			x->off = o2;
		uint32_t *l2 = realloc(x->len, sizeof(*l2) * c);
		if (l2)
			x->len = l2;
		if (!o2 || !l2) {
			*rc = -ENOMEM;
			return TOK_NONE;
		}
		x->cap = c;
	}
	if (x->arena_len + len > x->arena_cap) {
		size_t c = x->arena_cap ? x->arena_cap : 4096;
		while (c < x->arena_len + len)
			c *= 2;
		char *a = realloc(x->arena, c);
		if (!a) {
			*rc = -ENOMEM;
			return TOK_NONE;
		}
		x->arena = a;
		x->arena_cap = c;
	}
	memcpy(x->arena + x->arena_len, s, len);
	x->off[x->n] = (uint32_t)x->arena_len;
	x->len[x->n] = (uint32_t)len;
	x->arena_len += len;
	if ((*rc = extra_put(x, x->n)))
		return TOK_NONE;
	x->n++;
	return (uint32_t)t->n_vocab + x->n - 1;
}

void tok_bpe_free(struct tokenizer *t)
{
	free(t->merges);
	smk_hindex_deinit(&t->merge_index);
	free(t->extra.arena);
	free(t->extra.off);
	free(t->extra.len);
	smk_hindex_deinit(&t->extra.map);
}

int tok_bpe_load(struct tokenizer *t, const struct gguf *g, struct smk_err *err)
{
	const char *path = gguf_path(g);
	struct gguf_arr mg;
	int rc = gguf_get_arr(g, "tokenizer.ggml.merges", &mg, err);
	if (rc == -ENOENT)
		return smk_fail(err, -EINVAL, "%s: tokenizer.ggml.merges is missing (required "
				"for a gpt2 tokenizer)", path);
	if (rc)
		return rc;
	if (mg.elem != GGUF_VT_STRING)
		return smk_fail(err, -EINVAL, "%s: tokenizer.ggml.merges is not a string array", path);
	if (mg.n >= (uint64_t)INT32_MAX / 4)
		return smk_fail(err, -EINVAL, "%s: tokenizer.ggml.merges has %llu entries",
				path, (unsigned long long)mg.n);

	t->merges = malloc(sizeof(*t->merges) * (mg.n + 1));
	if (!t->merges || smk_hindex_init(&t->merge_index, mg.n))
		return smk_fail(err, -ENOMEM, "%s: out of memory for %llu merges", path,
				(unsigned long long)mg.n);

	char *cat = NULL;
	size_t cat_cap = 0;
	rc = 0;
	for (uint64_t i = 0; i < mg.n && !rc; i++) {
		const char *s;
		size_t len;
		if (gguf_arr_str(&mg, i, &s, &len)) {
			rc = smk_fail(err, -EINVAL, "%s: tokenizer.ggml.merges[%llu] unreadable", path,
				      (unsigned long long)i);
			break;
		}
		/* llama.cpp splits at the first space after the first byte; a merge
		 * without one (or with an empty side) can never apply. */
		const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
		if (!sp || sp + 1 == s + len)
			continue;
		size_t ll = (size_t)(sp - s), rl = len - ll - 1;
		if (len > cat_cap) {
			char *c2 = realloc(cat, len * 2);
			if (!c2) {
				rc = -ENOMEM;
				break;
			}
			cat = c2;
			cat_cap = len * 2;
		}
		memcpy(cat, s, ll);
		memcpy(cat + ll, sp + 1, rl);
		uint32_t l = ext_id(t, s, ll, true, &rc);
		uint32_t r = rc ? TOK_NONE : ext_id(t, sp + 1, rl, true, &rc);
		uint32_t res = rc ? TOK_NONE : ext_id(t, cat, ll + rl, true, &rc);
		if (rc)
			break;
		/* A pair already put keeps its rank: the first (lowest) rank wins,
		 * as in llama.cpp. */
		struct merge_key k = { t->merges, l, r };
		int32_t e = (int32_t)t->n_merges;
		if (smk_hindex_put(&t->merge_index, merge_hash(l, r), merge_eq, &k, e) == e)
			t->merges[t->n_merges++] = (struct tok_merge){ l, r, (int32_t)i, res };
	}
	if (!rc) {
		for (int b = 0; b < 256; b++) {
			char u[4];
			size_t n = unicode_encode(unicode_gpt2_byte_to_cp((uint8_t)b), u);
			t->gpt2_ext[b] = ext_id(t, u, n, false, &rc);
			for (size_t k = 0; k < 2; k++)
				t->gpt2_fallback[b][k] = k < n ? tok_lookup(t, u + k, 1) : -1;
		}
		for (uint32_t cp = 0; cp < 324; cp++)
			t->gpt2_inv[cp] = (int16_t)unicode_gpt2_cp_to_byte(cp);
		for (int b = 0; b < 256; b++)
			t->gpt2_cp[b] = (uint16_t)unicode_gpt2_byte_to_cp((uint8_t)b);
	}
	free(cat);
	if (rc == -ENOMEM)
		return smk_fail(err, -ENOMEM, "%s: out of memory reading merges", path);
	if (rc == -E2BIG)
		return smk_fail(err, -EINVAL, "%s: tokenizer.ggml.merges is too large", path);
	return rc;
}
