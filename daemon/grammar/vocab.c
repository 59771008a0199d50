/* vocab.c - the vocabulary's byte trie, the per-state token masks and
 * their cache, and the sequence's matcher (gmatch).
 *
 * The trie is stored in preorder: node i's subtree is nodes i..end[i]-1,
 * its first child (if any) is i+1, and its next sibling is end[i].  Tokens
 * are listed in the same order (tok[]), so the tokens that end at node i
 * are tok[tbeg[i] .. tbeg[i+1]) and those of its whole subtree are
 * tok[tbeg[i] .. tbeg[end[i]]).  plain[i] says that every token below i
 * continues a JSON string with complete, valid UTF-8 characters and no
 * quote, backslash or control byte after node i's byte, and max_chars[i]
 * how many characters the longest of them adds: inside a string with room
 * for that many, the whole subtree is allowed without walking it.
 *
 * Inside a string most of a vocabulary is "plain" from its first byte (the
 * default model: 254,292 of 262,144 tokens, none over 31 characters).  For
 * those states the mask starts as a copy of plain_le[k] (the plain tokens
 * of at most k characters; k = the string's room) and only a second trie
 * of the other tokens (quotes, escapes, byte tokens: 1,602 of them) is
 * walked. */
#include "grammar/grammar_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "unicode/unicode.h"

#define MAX_PIECE 255

/* A trie in preorder (see above). */
struct gtrie {
	uint32_t n_nodes;
	unsigned char *byte;
	uint8_t *depth;
	uint32_t *end;
	uint32_t *tbeg;                /* n_nodes + 1 */
	uint8_t *plain;
	uint8_t *max_chars;
	int32_t *tok;
	uint32_t n_tok;
};

#define PLAIN_K 64                 /* plain_le[0..PLAIN_K], then all */

struct gvocab {
	const struct tokenizer *tk;
	int32_t n_vocab;
	uint32_t n_words;              /* of a mask */
	/* each token's bytes (len 0: never allowed inside the value) */
	uint32_t *piece_off;
	uint8_t *piece_len;
	unsigned char *pieces;
	struct gtrie all;              /* every token with bytes */
	struct gtrie np;               /* the tokens that are not plain */
	uint32_t *plain_le;            /* (PLAIN_K + 2) masks: k chars at most, [PLAIN_K + 1] all */
	uint32_t max_plain_chars;
	int32_t *eog;
	int n_eog;
};

int32_t gvocab_n_vocab(const struct gvocab *v)
{
	return v->n_vocab;
}

/* About: the pieces count as one byte per trie node. */
size_t gvocab_bytes(const struct gvocab *v, uint32_t *n_nodes)
{
	size_t t = (size_t)v->n_vocab, b = sizeof(*v) + t * (4 + 1 + 4) + v->all.n_nodes;
	const struct gtrie *tr[2] = { &v->all, &v->np };
	for (int i = 0; i < 2; i++)
		b += (size_t)tr[i]->n_nodes * 12 + 4 * (size_t)tr[i]->n_tok;
	if (n_nodes)
		*n_nodes = v->all.n_nodes;
	return b + (size_t)(PLAIN_K + 2) * v->n_words * 4;
}

static void gtrie_free(struct gtrie *t)
{
	free(t->byte);
	free(t->depth);
	free(t->end);
	free(t->tbeg);
	free(t->plain);
	free(t->max_chars);
	free(t->tok);
}

struct gvocab *gvocab_free(struct gvocab *v)
{
	if (!v)
		return NULL;
	free(v->piece_off);
	free(v->piece_len);
	free(v->pieces);
	gtrie_free(&v->all);
	gtrie_free(&v->np);
	free(v->plain_le);
	free(v->eog);
	free(v);
	return NULL;
}

static int piece_cmp(const void *a, const void *b, void *ctx)
{
	const struct gvocab *v = ctx;
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	size_t lx = v->piece_len[x], ly = v->piece_len[y];
	int r = memcmp(v->pieces + v->piece_off[x], v->pieces + v->piece_off[y], lx < ly ? lx : ly);
	if (r)
		return r;
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* ok[k] for k = 0..len: bytes p[k..len) are whole UTF-8 characters with no
 * quote, backslash or control byte (what a string takes as it is); chars[k]
 * counts the characters of p[k..len) (lead bytes). */
static void plain_suffixes(const unsigned char *p, size_t len, bool *ok, uint8_t *chars)
{
	ok[len] = true;
	chars[len] = 0;
	for (size_t k = len; k-- > 0;) {
		unsigned char c = p[k];
		chars[k] = (uint8_t)(chars[k + 1] + ((c & 0xc0) != 0x80));
		if (c < 0x80) {
			ok[k] = c >= 0x20 && c != '"' && c != '\\' && ok[k + 1];
			continue;
		}
		size_t n;
		ok[k] = unicode_utf8_check(p + k, len - k, &n) == UNICODE_UTF8_OK && ok[k + n];
	}
}

/* The trie of order[n] (sorted pieces; bytes: their total).  whole[k]
 * receives whether order[k]'s whole piece is plain. */
static int gtrie_build(struct gtrie *t, const struct gvocab *v, const int32_t *order, int32_t n,
		       size_t bytes, bool *whole)
{
	t->byte = malloc(bytes + 1);
	t->depth = malloc(bytes + 1);
	t->end = malloc(sizeof(*t->end) * (bytes + 1));
	t->tbeg = malloc(sizeof(*t->tbeg) * (bytes + 2));
	t->plain = malloc(bytes + 1);
	t->max_chars = malloc(bytes + 1);
	t->tok = malloc(sizeof(*t->tok) * (size_t)(n + 1));
	if (!t->byte || !t->depth || !t->end || !t->tbeg || !t->plain || !t->max_chars || !t->tok)
		return -ENOMEM;
	uint32_t path[MAX_PIECE + 1];
	bool ok[MAX_PIECE + 1];
	uint8_t chars[MAX_PIECE + 1];
	size_t path_len = 0;             /* nodes open, depths 1..path_len */
	const unsigned char *prev = NULL;
	size_t prev_len = 0;
	for (int32_t k = 0; k < n; k++) {
		int32_t id = order[k];
		const unsigned char *p = v->pieces + v->piece_off[id];
		size_t len = v->piece_len[id], l = 0;
		while (prev && l < len && l < prev_len && p[l] == prev[l])
			l++;
		/* close the nodes below the common prefix */
		while (path_len > l)
			t->end[path[--path_len]] = t->n_nodes;
		for (size_t d = l; d < len; d++) {
			uint32_t i = t->n_nodes++;
			t->byte[i] = p[d];
			t->depth[i] = (uint8_t)(d + 1);
			t->tbeg[i] = t->n_tok;
			t->plain[i] = 1;
			t->max_chars[i] = 0;
			path[path_len++] = i;
		}
		t->tok[t->n_tok++] = id;
		plain_suffixes(p, len, ok, chars);
		whole[k] = ok[0];
		for (size_t d = 1; d <= len; d++) {
			uint32_t node = path[d - 1];
			if (!ok[d])
				t->plain[node] = 0;
			if (chars[d] > t->max_chars[node])
				t->max_chars[node] = chars[d];
		}
		prev = p;
		prev_len = len;
	}
	while (path_len > 0)
		t->end[path[--path_len]] = t->n_nodes;
	t->tbeg[t->n_nodes] = t->n_tok;
	return 0;
}

int gvocab_new(struct gvocab **out, const struct tokenizer *t, struct smk_err *err)
{
	struct gvocab *v = calloc(1, sizeof(*v));
	if (!v)
		return smk_fail(err, -ENOMEM, "grammar: out of memory");
	int32_t n = tokenizer_n_vocab(t);
	v->tk = t;
	v->n_vocab = n;
	v->piece_off = calloc((size_t)n, sizeof(*v->piece_off));
	v->piece_len = calloc((size_t)n, 1);
	v->eog = calloc((size_t)n, sizeof(*v->eog));
	int32_t *order = malloc(sizeof(*order) * (size_t)n);
	size_t cap = 1 << 20, used = 0;
	v->pieces = malloc(cap);
	if (!v->piece_off || !v->piece_len || !v->eog || !order || !v->pieces)
		goto oom;
	int32_t n_order = 0;
	unsigned char buf[MAX_PIECE + 1];
	for (int32_t id = 0; id < n; id++) {
		if (tokenizer_is_eog(t, id)) {
			v->eog[v->n_eog++] = id;
			continue;
		}
		size_t len = tokenizer_piece(t, id, false, (char *)buf, sizeof(buf));
		if (len == 0 || len > MAX_PIECE)
			continue;
		if (used + len > cap) {
			unsigned char *p = realloc(v->pieces, cap * 2);
			if (!p)
				goto oom;
			v->pieces = p;
			cap *= 2;
		}
		memcpy(v->pieces + used, buf, len);
		v->piece_off[id] = (uint32_t)used;
		v->piece_len[id] = (uint8_t)len;
		used += len;
		order[n_order++] = id;
	}
	qsort_r(order, (size_t)n_order, sizeof(*order), piece_cmp, v);

	bool *whole = malloc((size_t)n_order + 1);
	int32_t *np_order = malloc(sizeof(*np_order) * ((size_t)n_order + 1));
	v->n_words = (uint32_t)((n + 31) / 32);
	v->plain_le = calloc((size_t)(PLAIN_K + 2) * v->n_words, 4);
	if (!whole || !np_order || !v->plain_le ||
	    gtrie_build(&v->all, v, order, n_order, used, whole)) {
		free(whole);
		free(np_order);
		goto oom;
	}
	/* The plain tokens by character count, cumulated; the others' trie. */
	int32_t n_np = 0;
	for (int32_t k = 0; k < n_order; k++) {
		int32_t id = order[k];
		if (!whole[k]) {
			np_order[n_np++] = id;
			continue;
		}
		uint32_t c = 0;
		const unsigned char *p = v->pieces + v->piece_off[id];
		for (size_t i = 0; i < v->piece_len[id]; i++)
			c += (p[i] & 0xc0) != 0x80;
		if (c > v->max_plain_chars)
			v->max_plain_chars = c;
		uint32_t *m = v->plain_le + (size_t)(c < PLAIN_K ? c : PLAIN_K + 1) * v->n_words;
		m[id >> 5] |= 1u << (id & 31);
	}
	for (uint32_t k = 1; k <= PLAIN_K + 1; k++)
		for (uint32_t w = 0; w < v->n_words; w++)
			v->plain_le[(size_t)k * v->n_words + w] |= v->plain_le[(size_t)(k - 1) * v->n_words + w];
	int rc = gtrie_build(&v->np, v, np_order, n_np, used, whole);
	free(whole);
	free(np_order);
	if (rc)
		goto oom;
	free(order);
	*out = v;
	return 0;
oom:
	free(order);
	gvocab_free(v);
	return smk_fail(err, -ENOMEM, "grammar: out of memory for the vocabulary's trie");
}

/* ---- the matcher ---- */

struct centry {
	uint64_t hash;
	uint32_t key_off, key_len;
	uint32_t mask;                 /* index of its mask */
	int32_t count;
	uint32_t max_comp;             /* the largest completion after an allowed token */
	bool used;
};

struct gmatch {
	const struct grammar *g;
	const struct gvocab *v;
	struct gstate st[2];
	int cur;                       /* st[cur] is the state */
	bool ended;                    /* an end token was accepted */
	bool waiting;                  /* the trigger is not yet read */
	uint32_t n_trig;               /* bytes of the trigger matched so far */
	/* the walk: the state after each depth of the trie */
	struct gstate *lv;             /* MAX_PIECE + 1 */
	/* the cache */
	uint32_t n_words;
	uint32_t cap_masks, n_masks;
	uint32_t *masks;               /* cap_masks * n_words */
	struct centry *tab;
	uint32_t tab_size;             /* power of two, >= 2 cap_masks */
	unsigned char *keys;
	size_t cap_keys, n_keys;
	unsigned char *key;            /* scratch: the current state's key */
	const uint32_t *last;          /* the mask gmatch_mask returned */
	int32_t last_count;
	uint32_t last_max_comp;
	uint32_t *own;                 /* a mask that did not fit the cache */
	uint64_t computed, cached;
};

int gmatch_new(struct gmatch **out, const struct grammar *g, const struct gvocab *v,
	       size_t cache_bytes, struct smk_err *err)
{
	struct gmatch *m = calloc(1, sizeof(*m));
	if (!m)
		return smk_fail(err, -ENOMEM, "grammar: out of memory");
	m->g = g;
	m->v = v;
	m->n_words = (uint32_t)((v->n_vocab + 31) / 32);
	size_t mask_bytes = (size_t)m->n_words * 4;
	size_t cap = cache_bytes / mask_bytes;
	m->cap_masks = (uint32_t)(cap < 16 ? 16 : cap > 4096 ? 4096 : cap);
	m->tab_size = 32;
	while (m->tab_size < 2 * m->cap_masks)
		m->tab_size *= 2;
	m->cap_keys = (size_t)m->cap_masks * 256;
	m->lv = malloc(sizeof(*m->lv) * (MAX_PIECE + 1));
	m->masks = malloc(mask_bytes * m->cap_masks);
	m->tab = calloc(m->tab_size, sizeof(*m->tab));
	m->keys = malloc(m->cap_keys);
	m->key = malloc(sizeof(struct gstate) + 1);
	m->own = malloc(mask_bytes);
	if (!m->lv || !m->masks || !m->tab || !m->keys || !m->key || !m->own) {
		gmatch_free(m);
		return smk_fail(err, -ENOMEM, "grammar: out of memory for a sequence's masks");
	}
	gmatch_reset(m);
	*out = m;
	return 0;
}

struct gmatch *gmatch_free(struct gmatch *m)
{
	if (!m)
		return NULL;
	free(m->lv);
	free(m->masks);
	free(m->tab);
	free(m->keys);
	free(m->key);
	free(m->own);
	free(m);
	return NULL;
}

void gmatch_reset(struct gmatch *m)
{
	m->cur = 0;
	m->ended = false;
	m->last = NULL;
	m->waiting = m->g->n_trig > 0;
	m->n_trig = 0;
	gstate_init(m->g, &m->st[0]);
}

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static void allow_range(const struct gtrie *t, uint32_t *mask, uint32_t from, uint32_t to)
{
	for (uint32_t k = from; k < to; k++) {
		uint32_t id = (uint32_t)t->tok[k];
		mask[id >> 5] |= 1u << (id & 31);
	}
}

/* Walk trie t from state root: allow (OR into mask) every token whose
 * bytes keep the state alive and leave a completion of at most budget
 * bytes; returns the longest such completion over the live tokens. */
static uint32_t walk(struct gmatch *m, const struct gtrie *t, const struct gstate *root, uint32_t *mask,
		     uint32_t budget)
{
	const struct grammar *g = m->g;
	uint32_t i = 0, worst = 0;
	while (i < t->n_nodes) {
		uint32_t d = t->depth[i];
		const struct gstate *parent = d == 1 ? root : &m->lv[d - 1];
		struct gstate *here = &m->lv[d];
		if (!gstate_feed(g, parent, t->byte[i], here)) {
			i = t->end[i];
			continue;
		}
		uint32_t room;
		if (t->plain[i] && gstate_string_room(g, here, &room) && t->max_chars[i] <= room) {
			/* Every token below stays in the string, within its
			 * bounds; the completion is this state's or (a bounded
			 * string's minLength nearer) shorter. */
			uint32_t c = gstate_min_completion(g, here);
			if (c > worst)
				worst = c;
			if (c <= budget)
				allow_range(t, mask, t->tbeg[i], t->tbeg[t->end[i]]);
			i = t->end[i];
			continue;
		}
		if (t->tbeg[i] < t->tbeg[i + 1]) {
			uint32_t c = gstate_min_completion(g, here);
			if (c > worst)
				worst = c;
			if (c <= budget)
				allow_range(t, mask, t->tbeg[i], t->tbeg[i + 1]);
		}
		i++;
	}
	return worst;
}

/* The mask of the current state (see walk); *max_comp: the longest
 * completion after a live token. */
static void compute_mask(struct gmatch *m, uint32_t *mask, uint32_t budget, uint32_t *max_comp)
{
	const struct gvocab *v = m->v;
	const struct grammar *g = m->g;
	const struct gstate *root = &m->st[m->cur];
	uint32_t room;
	if (budget == GN_INF && gstate_string_room(g, root, &room)) {
		/* Inside a string: the plain tokens that fit, then a walk of
		 * the others.  A plain token leaves a completion no longer than
		 * this state's. */
		uint32_t k = room >= v->max_plain_chars ? PLAIN_K + 1 : room < PLAIN_K ? room : PLAIN_K;
		memcpy(mask, v->plain_le + (size_t)k * v->n_words, (size_t)v->n_words * 4);
		uint32_t worst = walk(m, &v->np, root, mask, budget), c = gstate_min_completion(g, root);
		*max_comp = c > worst ? c : worst;
	} else {
		memset(mask, 0, (size_t)m->n_words * 4);
		*max_comp = walk(m, &v->all, root, mask, budget);
	}
	if (gstate_can_end(g, root))
		for (int k = 0; k < v->n_eog; k++)
			mask[v->eog[k] >> 5] |= 1u << (v->eog[k] & 31);
}

static int32_t popcount_mask(const uint32_t *mask, uint32_t n_words)
{
	int32_t c = 0;
	for (uint32_t i = 0; i < n_words; i++)
		c += __builtin_popcount(mask[i]);
	return c;
}

static void cache_clear(struct gmatch *m)
{
	memset(m->tab, 0, sizeof(*m->tab) * m->tab_size);
	m->n_masks = 0;
	m->n_keys = 0;
}

const uint32_t *gmatch_mask(struct gmatch *m)
{
	if (m->last)
		return m->last;
	size_t klen = gstate_key(&m->st[m->cur], m->key);
	uint64_t h = fnv1a(m->key, klen);
	uint32_t slot = (uint32_t)h & (m->tab_size - 1);
	for (;;) {
		struct centry *e = &m->tab[slot];
		if (!e->used)
			break;
		if (e->hash == h && e->key_len == klen && !memcmp(m->keys + e->key_off, m->key, klen)) {
			m->cached++;
			m->last = m->masks + (size_t)e->mask * m->n_words;
			m->last_count = e->count;
			m->last_max_comp = e->max_comp;
			return m->last;
		}
		slot = (slot + 1) & (m->tab_size - 1);
	}
	m->computed++;
	if (klen > m->cap_keys) {
		/* cannot be cached (a very deep state): computed every time */
		compute_mask(m, m->own, GN_INF, &m->last_max_comp);
		m->last = m->own;
		m->last_count = popcount_mask(m->own, m->n_words);
		return m->last;
	}
	if (m->n_masks == m->cap_masks || m->n_keys + klen > m->cap_keys) {
		cache_clear(m);
		slot = (uint32_t)h & (m->tab_size - 1);
	}
	uint32_t *mask = m->masks + (size_t)m->n_masks * m->n_words, max_comp;
	compute_mask(m, mask, GN_INF, &max_comp);
	struct centry *e = &m->tab[slot];
	*e = (struct centry){ .hash = h, .key_off = (uint32_t)m->n_keys, .key_len = (uint32_t)klen,
			      .mask = m->n_masks, .count = popcount_mask(mask, m->n_words),
			      .max_comp = max_comp, .used = true };
	memcpy(m->keys + m->n_keys, m->key, klen);
	m->n_keys += klen;
	m->n_masks++;
	m->last = mask;
	m->last_count = e->count;
	m->last_max_comp = max_comp;
	return mask;
}

const uint32_t *gmatch_mask_budget(struct gmatch *m, int tokens_left)
{
	const uint32_t *mask = gmatch_mask(m);
	if (tokens_left < 1 || m->last_max_comp <= (uint32_t)(tokens_left - 1))
		return mask;
	/* Some allowed token would leave more to write than the tokens left
	 * can hold: keep those that leave at most tokens_left - 1 bytes (the
	 * vocabulary has a token for every byte the value may need, so each
	 * step can shorten the completion by one).  Not cached: this is the
	 * end of a long answer.  When nothing passes, the plain mask stays. */
	uint32_t worst;
	compute_mask(m, m->own, (uint32_t)(tokens_left - 1), &worst);
	int32_t count = popcount_mask(m->own, m->n_words);
	if (!count)
		return mask;
	m->last = m->own;
	m->last_count = count;
	m->last_max_comp = (uint32_t)(tokens_left - 1);
	return m->own;
}

const uint32_t *gmatch_mask_optional(struct gmatch *m)
{
	const struct gvocab *v = m->v;
	const uint32_t *mask = gmatch_mask(m);
	/* The first bytes that could begin the value (or its pre text). */
	bool starts[256];
	for (int c = 0; c < 256; c++)
		starts[c] = gstate_feed(m->g, &m->st[m->cur], c, &m->lv[0]) != 0;
	uint32_t *own = m->own;
	if (mask != own)
		memcpy(own, mask, (size_t)m->n_words * 4);
	for (int32_t id = 0; id < v->n_vocab; id++)
		if (!v->piece_len[id] || !starts[v->pieces[v->piece_off[id]]])
			own[id >> 5] |= 1u << (id & 31);
	m->last = own;
	m->last_count = popcount_mask(own, m->n_words);
	return own;
}

int gmatch_mask_count(const struct gmatch *m)
{
	return m->last ? m->last_count : 0;
}

int gmatch_feed(struct gmatch *m, const char *s, size_t len)
{
	if (m->ended)
		return len ? -EINVAL : 0;
	int from = m->cur;
	int other = 1 - from;
	/* feed into lv[0..] as scratch so that st[cur] stays as it was on failure */
	const struct gstate *src = &m->st[from];
	for (size_t i = 0; i < len; i++) {
		struct gstate *dst = i % 2 ? &m->lv[1] : &m->lv[0];
		if (!gstate_feed(m->g, src, (unsigned char)s[i], dst))
			return -EINVAL;
		src = dst;
	}
	if (len) {
		gstate_copy(&m->st[other], src);
		m->cur = other;
		m->last = NULL;
	}
	return 0;
}

bool gmatch_waiting(const struct gmatch *m)
{
	return m->waiting;
}

/* The trigger's bytes matched after one more byte c, k matched before:
 * the longest beginning of t that ends the text (a plain border search:
 * the trigger is short, and this runs once per byte while waiting). */
static uint32_t trig_step(const char *t, uint32_t n, uint32_t k, unsigned char c)
{
	for (;;) {
		if (k < n && (unsigned char)t[k] == c)
			return k + 1;
		if (!k)
			return 0;
		uint32_t j = k - 1;
		while (j && memcmp(t, t + k - j, j))
			j--;
		k = j;
	}
}

/* Free text until the trigger; the token's bytes after it feed the frame. */
static int accept_waiting(struct gmatch *m, int32_t id)
{
	const struct gvocab *v = m->v;
	const char *p = (const char *)v->pieces + v->piece_off[id];
	size_t len = v->piece_len[id];
	for (size_t i = 0; i < len; i++) {
		m->n_trig = trig_step(m->g->trig, m->g->n_trig, m->n_trig, (unsigned char)p[i]);
		if (m->n_trig == m->g->n_trig) {
			m->waiting = false;
			m->last = NULL;
			return gmatch_feed(m, p + i + 1, len - i - 1);
		}
	}
	return 0;
}

int gmatch_accept(struct gmatch *m, int32_t id)
{
	const struct gvocab *v = m->v;
	if (id < 0 || id >= v->n_vocab || m->ended)
		return -EINVAL;
	if (m->waiting)
		return accept_waiting(m, id);
	for (int k = 0; k < v->n_eog; k++)
		if (v->eog[k] == id) {
			if (!gstate_can_end(m->g, &m->st[m->cur]))
				return -EINVAL;
			m->ended = true;
			m->last = NULL;
			return 0;
		}
	if (!v->piece_len[id])
		return -EINVAL;
	return gmatch_feed(m, (const char *)v->pieces + v->piece_off[id], v->piece_len[id]);
}

bool gmatch_can_end(const struct gmatch *m)
{
	if (m->waiting)
		return false;
	return m->ended || gstate_can_end(m->g, &m->st[m->cur]);
}

bool gmatch_done(const struct gmatch *m)
{
	if (m->waiting)
		return false;
	return m->ended || gstate_done(&m->st[m->cur]);
}

void gmatch_stats(const struct gmatch *m, uint64_t *computed, uint64_t *cached)
{
	*computed = m->computed;
	*cached = m->cached;
}
