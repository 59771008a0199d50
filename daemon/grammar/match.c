/* match.c - the automaton: feeding one byte to a set of stacks of frames.
 *
 * Each open value is a frame (node, phase, counters).  A container's frame
 * stays under its child's while the child is open; when the child ends
 * (child_done) the container moves on.  A number, or a literal that is
 * complete but a prefix of a longer one (enum [1, 10]), ends only when a
 * byte arrives that cannot extend it: that byte is then fed again to the
 * frame below ("pop and refeed").  anyOf is not a frame: where a value
 * starts, each alternative is tried on the value's first byte, and every
 * one that survives becomes a stack of its own. */
#include "grammar/grammar_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum {
	R_START, R_VALUE, R_DONE, R_PRE, R_POST,       /* root */
	O_OPEN, O_KEY, O_COLON, O_VALUE_WS, O_VALUE,   /* object */
	O_AFTER, O_COMMA,
	M_OPEN, M_KEY, M_COLON, M_VALUE_WS, M_VALUE,   /* map */
	M_AFTER, M_COMMA,
	A_OPEN, A_VALUE, A_AFTER, A_COMMA,             /* array */
	S_IN, S_UTF8, S_ESC, S_HEX,                    /* string */
	N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC,         /* number */
	N_E, N_ESIGN, N_EXP,
	L_IN,                                          /* literal */
};

#define MAX_INT_DIGITS 15
#define MAX_INTEGER_DIGITS 18
#define MAX_FRAC_DIGITS 15
#define MAX_EXP_DIGITS 2
#define MAX_ANYOF_NEST 16
#define MEASURE_PASSES 256

/* What feeding a byte to the top frame did. */
enum step { ST_OK, ST_DEAD, ST_REFEED };

static const struct gnode *node_at(const struct grammar *g, uint32_t id, uint32_t *out_id)
{
	while (g->nodes[id].kind == GN_REF)
		id = g->nodes[id].u.ref.target;
	if (out_id)
		*out_id = id;
	return &g->nodes[id];
}

static bool is_ws(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static struct gframe *top(struct gstack *s)
{
	return &s->f[s->depth - 1];
}

static bool push(struct gstack *s, uint32_t node, uint8_t phase)
{
	if (s->depth >= GM_MAX_DEPTH) {
		s->depth = 0;
		return false;
	}
	s->f[s->depth++] = (struct gframe){ .node = (uint16_t)node, .phase = phase };
	return true;
}

/* The top frame's value is complete: pop it and move its parent on. */
static void child_done(const struct grammar *g, struct gstack *s)
{
	s->depth--;
	struct gframe *p = top(s);
	if (p->node == GF_ROOT) {
		p->phase = g->n_post ? R_POST : R_DONE;
		p->a = 0;
		return;
	}
	p->x = 0;
	switch (p->phase) {
	case O_VALUE:
		p->phase = O_AFTER;
		p->a = (p->a & 0xffff) + 1;
		p->b = 0;
		break;
	case M_KEY:
		p->phase = M_COLON;
		break;
	case M_VALUE:
		p->phase = M_AFTER;
		break;
	case A_VALUE: {
		const struct gnode *n = node_at(g, p->node, NULL);
		uint32_t cap = n->u.arr.max != GN_UNBOUNDED ? n->u.arr.max : n->u.arr.min;
		p->phase = A_AFTER;
		if (p->a < cap)
			p->a++;
		break;
	}
	default:
		break;
	}
}

/* ---- integers with bounds ---- */

static const int64_t pow10_tab[19] = {
	1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL, 10000000LL, 100000000LL,
	1000000000LL, 10000000000LL, 100000000000LL, 1000000000000LL, 10000000000000LL,
	100000000000000LL, 1000000000000000LL, 10000000000000000LL, 100000000000000000LL,
	1000000000000000000LL,
};

static bool in_bounds(const struct gnode *n, int64_t v)
{
	return (!n->u.num.has_lo || v >= n->u.num.lo) && (!n->u.num.has_hi || v <= n->u.num.hi);
}

static bool bounded(const struct gnode *n)
{
	return n->kind == GN_INTEGER && (n->u.num.has_lo || n->u.num.has_hi);
}

/* Does [a, b] meet the node's bounds? */
static bool meets(const struct gnode *n, int64_t a, int64_t b)
{
	return (!n->u.num.has_lo || b >= n->u.num.lo) && (!n->u.num.has_hi || a <= n->u.num.hi);
}

/* Can the integer written so far (sign, magnitude v of nd digits; nd 0:
 * only the sign) still end within the bounds? */
static bool int_feasible(const struct gnode *n, bool neg, int64_t v, int nd)
{
	if (!bounded(n))
		return true;
	if (nd == 0) {
		for (int d = 0; d <= 9; d++)
			if (int_feasible(n, neg, d, 1))
				return true;
		return false;
	}
	if (v == 0)
		return in_bounds(n, 0);
	for (int k = 0; nd + k <= MAX_INTEGER_DIGITS; k++) {
		int64_t lo = v * pow10_tab[k], hi = lo + pow10_tab[k] - 1;
		if (neg ? meets(n, -hi, -lo) : meets(n, lo, hi))
			return true;
	}
	return false;
}

/* ---- numbers with bounds ----
 *
 * Written as -?(0|[1-9][0-9]{0,11})(\.[0-9]{1,6})? (no exponent); the
 * frame keeps the magnitude so far in units of 1e-6 (b), the integer
 * digits (a & 0xff), the decimals (a >> 8) and the sign (x).  The values a
 * prefix can still reach are grids (k more integer digits, j decimals:
 * step 10^(6-j)), so "can it end within bounds, and in how few more
 * characters" is a few grid-interval tests. */

#define NUM_INT 12
#define NUM_FRAC 6

static bool nbounded(const struct gnode *n)
{
	return n->kind == GN_NUMBER && (n->u.num.has_lo || n->u.num.has_hi);
}

/* The bounds on the magnitude, for a sign. */
static void mag_bounds(const struct gnode *n, bool neg, int64_t *mlo, int64_t *mhi)
{
	const int64_t inf = INT64_MAX / 4;
	if (!neg) {
		*mlo = n->u.num.has_lo ? n->u.num.lo : -inf;
		*mhi = n->u.num.has_hi ? n->u.num.hi : inf;
	} else {
		*mlo = n->u.num.has_hi ? -n->u.num.hi : -inf;
		*mhi = n->u.num.has_lo ? -n->u.num.lo : inf;
	}
}

/* Is some base + m step (0 <= m < count) within [mlo, mhi]? */
static bool grid_hits(int64_t base, int64_t step, int64_t count, int64_t mlo, int64_t mhi)
{
	int64_t last = base + (count - 1) * step;
	int64_t a = base > mlo ? base : mlo, b = last < mhi ? last : mhi;
	if (a > b)
		return false;
	return base + (a - base + step - 1) / step * step <= b;
}

/* Fewest more characters that end the number within its bounds, from
 * magnitude S with nd integer digits (0: none yet), the dot seen or not,
 * f decimals; GN_INF: it cannot. */
static uint32_t bnum_extra(const struct gnode *n, bool neg, int64_t S, int nd, bool dot, int f)
{
	int64_t mlo, mhi;
	mag_bounds(n, neg, &mlo, &mhi);
	uint32_t best = GN_INF;
	if (!dot && nd == 0) {
		for (int d = 0; d <= 9; d++) {
			uint32_t e = bnum_extra(n, neg, d * GN_NUM_SCALE, 1, false, 0);
			if (e != GN_INF && e + 1 < best)
				best = e + 1;
		}
		return best;
	}
	if (dot) {
		for (int j = f ? 0 : 1; f + j <= NUM_FRAC; j++)
			if (grid_hits(S, pow10_tab[NUM_FRAC - f - j], pow10_tab[j], mlo, mhi))
				return (uint32_t)j;
		return GN_INF;
	}
	int64_t v = S / GN_NUM_SCALE;
	int kmax = v == 0 ? 0 : NUM_INT - nd;
	for (int k = 0; k <= kmax; k++) {
		int64_t base = v * pow10_tab[k] * GN_NUM_SCALE;
		for (int j = 0; j <= NUM_FRAC; j++) {
			uint32_t len = (uint32_t)k + (j ? (uint32_t)j + 1 : 0);
			if (len >= best)
				break;
			if (grid_hits(base, pow10_tab[NUM_FRAC - j], pow10_tab[k + j], mlo, mhi))
				best = len;
		}
	}
	return best;
}

static void start_bnumber(struct gstack *s, uint32_t id, const struct gnode *n, int c)
{
	bool neg = c == '-';
	int d = c >= '0' && c <= '9' ? c - '0' : -1;
	if ((!neg && d < 0) ||
	    (neg ? bnum_extra(n, true, 0, 0, false, 0) : bnum_extra(n, false, d * GN_NUM_SCALE, 1, false, 0)) == GN_INF ||
	    !push(s, id, neg ? N_MINUS : d ? N_INT : N_ZERO)) {
		s->depth = 0;
		return;
	}
	struct gframe *f = top(s);
	f->x = neg;
	if (!neg) {
		f->a = 1;
		f->b = (uint64_t)(d * GN_NUM_SCALE);
	}
}

static enum step bnum_end(const struct grammar *g, struct gstack *s, const struct gnode *n)
{
	struct gframe *f = top(s);
	int64_t mlo, mhi;
	mag_bounds(n, f->x, &mlo, &mhi);
	if ((int64_t)f->b < mlo || (int64_t)f->b > mhi)
		return ST_DEAD;
	child_done(g, s);
	return ST_REFEED;
}

static bool is_digit(int c);

static enum step feed_bnumber(const struct grammar *g, struct gstack *s, const struct gnode *n, int c)
{
	struct gframe *f = top(s);
	bool digit = c != GM_END && is_digit(c), neg = f->x;
	int d = digit ? c - '0' : 0, nd = (int)(f->a & 0xff), fr = (int)(f->a >> 8);
	int64_t S = (int64_t)f->b;
	switch (f->phase) {
	case N_MINUS:
		if (!digit || bnum_extra(n, true, d * GN_NUM_SCALE, 1, false, 0) == GN_INF)
			return ST_DEAD;
		f->phase = d ? N_INT : N_ZERO;
		f->a = 1;
		f->b = (uint64_t)(d * GN_NUM_SCALE);
		return ST_OK;
	case N_ZERO:
	case N_INT:
		if (digit) {
			if (f->phase == N_ZERO || nd >= NUM_INT)
				return ST_DEAD;
			S = S * 10 + d * GN_NUM_SCALE;
			if (bnum_extra(n, neg, S, nd + 1, false, 0) == GN_INF)
				return ST_DEAD;
			f->a = (uint32_t)nd + 1;
			f->b = (uint64_t)S;
			return ST_OK;
		}
		if (c == '.') {
			if (bnum_extra(n, neg, S, nd, true, 0) == GN_INF)
				return ST_DEAD;
			f->phase = N_DOT;
			return ST_OK;
		}
		return bnum_end(g, s, n);
	case N_DOT:
	case N_FRAC:
		if (digit) {
			if (fr >= NUM_FRAC)
				return ST_DEAD;
			S += d * pow10_tab[NUM_FRAC - fr - 1];
			if (bnum_extra(n, neg, S, nd, true, fr + 1) == GN_INF)
				return ST_DEAD;
			f->phase = N_FRAC;
			f->a = (uint32_t)nd | (uint32_t)(fr + 1) << 8;
			f->b = (uint64_t)S;
			return ST_OK;
		}
		if (f->phase == N_DOT)
			return ST_DEAD;
		return bnum_end(g, s, n);
	}
	return ST_DEAD;
}

/* ---- starting a value on its first byte ---- */

static void start_value(const struct grammar *g, struct gstate *st, uint32_t slot, uint32_t id,
			int c, int level);

static void start_number(const struct grammar *g, struct gstack *s, uint32_t id,
			 const struct gnode *n, int c)
{
	if (nbounded(n)) {
		start_bnumber(s, id, n, c);
		return;
	}
	if (c == '-') {
		if (!int_feasible(n, true, 0, 0) || !push(s, id, N_MINUS)) {
			s->depth = 0;
			return;
		}
		top(s)->x = 1;
	} else if (c == '0') {
		if (!int_feasible(n, false, 0, 1) || !push(s, id, N_ZERO))
			s->depth = 0;
	} else if (c >= '1' && c <= '9') {
		if (!int_feasible(n, false, c - '0', 1) || !push(s, id, N_INT)) {
			s->depth = 0;
			return;
		}
		top(s)->a = 1;
		top(s)->b = bounded(n) ? (uint64_t)(c - '0') : 0;
	} else {
		s->depth = 0;
	}
	(void)g;
}

/* Literals lo..hi-1 share their first pos bytes; narrow to those whose
 * byte at pos is c (they are sorted, so the range stays contiguous, and a
 * literal of length pos sorts first). */
static bool narrow(const struct grammar *g, uint32_t *lo, uint32_t *hi, uint32_t pos, int c)
{
	uint32_t a = *lo, b = *hi;
	if (a < b && g->lits[a].len <= pos)
		a++;                      /* the one literal of length pos */
	/* binary search: the first with byte >= c, then the first > c */
	uint32_t l = a, r = b;
	while (l < r) {
		uint32_t mid = l + (r - l) / 2;
		if ((unsigned char)g->text[g->lits[mid].off + pos] < c)
			l = mid + 1;
		else
			r = mid;
	}
	uint32_t first = l;
	r = b;
	while (l < r) {
		uint32_t mid = l + (r - l) / 2;
		if ((unsigned char)g->text[g->lits[mid].off + pos] <= c)
			l = mid + 1;
		else
			r = mid;
	}
	if (first == l)
		return false;
	*lo = first;
	*hi = l;
	return true;
}

/* After consuming byte pos-1 of a literal: if the range is one literal
 * and it is complete, the value ends now. */
static void literal_maybe_done(const struct grammar *g, struct gstack *s)
{
	struct gframe *f = top(s);
	uint32_t lo = (uint32_t)f->b, hi = (uint32_t)(f->b >> 32);
	if (hi - lo == 1 && g->lits[lo].len == f->a)
		child_done(g, s);
}

static void start_literal(const struct grammar *g, struct gstack *s, uint32_t id,
			  const struct gnode *n, int c)
{
	uint32_t lo = n->u.list.first, hi = lo + n->u.list.n;
	if (!narrow(g, &lo, &hi, 0, c) || !push(s, id, L_IN)) {
		s->depth = 0;
		return;
	}
	top(s)->a = 1;
	top(s)->b = lo | (uint64_t)hi << 32;
	literal_maybe_done(g, s);
}

static void copy_stack(struct gstack *dst, const struct gstack *src)
{
	dst->depth = src->depth;
	memcpy(dst->f, src->f, sizeof(struct gframe) * src->depth);
}

/* The value of node id starts with byte c on stack slot (whose top frame
 * has already moved to the phase that awaits the value's end). */
static void start_value(const struct grammar *g, struct gstate *st, uint32_t slot, uint32_t id,
			int c, int level)
{
	const struct gnode *n = node_at(g, id, &id);
	struct gstack *s = &st->s[slot];
	/* A value starts only where its smallest completion fits the stack. */
	if (c == GM_END || s->depth + g->min_depth[id] > GM_MAX_DEPTH) {
		s->depth = 0;
		return;
	}
	switch (n->kind) {
	case GN_ANYOF: {
		if (level >= MAX_ANYOF_NEST) {
			s->depth = 0;
			return;
		}
		struct gstack saved;
		copy_stack(&saved, s);
		for (uint32_t i = 0; i < n->u.list.n; i++) {
			uint32_t target = slot;
			if (i > 0) {
				if (st->n >= GM_MAX_STACKS)
					break;        /* dropped: narrows, never widens */
				target = st->n++;
				copy_stack(&st->s[target], &saved);
			}
			start_value(g, st, target, g->ids[n->u.list.first + i], c, level + 1);
		}
		return;
	}
	case GN_OBJECT:
		if (c != '{' || !push(s, id, O_OPEN))
			s->depth = 0;
		return;
	case GN_MAP:
		if (c != '{' || !push(s, id, M_OPEN))
			s->depth = 0;
		return;
	case GN_ARRAY:
		if (c != '[' || !push(s, id, A_OPEN))
			s->depth = 0;
		return;
	case GN_STRING:
		if (c != '"' || !push(s, id, S_IN))
			s->depth = 0;
		return;
	case GN_NUMBER:
	case GN_INTEGER:
		start_number(g, s, id, n, c);
		return;
	case GN_LITERAL:
		start_literal(g, s, id, n, c);
		return;
	default:
		s->depth = 0;
		return;
	}
}

/* ---- feeding the top frame ---- */

/* Whitespace between two JSON tokens, as llama.cpp's JSON grammars allow
 * it: none, one space, or a newline and at most GM_MAX_WS spaces and tabs
 * (an indentation).  f->x: 0 none yet, 1.. a newline and x - 1 blanks,
 * WS_CLOSED after a single space.  Anything more is where a small model
 * pads forever. */
#define WS_CLOSED 0xff

static bool ws_step(struct gframe *f, int c)
{
	if (f->x == 0) {
		if (c != ' ' && c != '\n')
			return false;
		f->x = c == ' ' ? WS_CLOSED : 1;
		return true;
	}
	if (f->x == WS_CLOSED || (c != ' ' && c != '\t') || f->x > GM_MAX_WS)
		return false;
	f->x++;
	return true;
}

/* Properties i.. that may come next: i, and after each optional one the
 * next, up to the first required one. */
static uint64_t window(const struct grammar *g, const struct gnode *n, uint32_t i)
{
	uint64_t m = 0;
	for (uint32_t j = i; j < n->u.obj.n; j++) {
		m |= 1ull << j;
		if (g->props[n->u.obj.first + j].required)
			break;
	}
	return m;
}

static bool required_left(const struct grammar *g, const struct gnode *n, uint32_t i)
{
	for (uint32_t j = i; j < n->u.obj.n; j++)
		if (g->props[n->u.obj.first + j].required)
			return true;
	return false;
}

static enum step feed_object(const struct grammar *g, struct gstate *st, uint32_t slot,
			     const struct gnode *n, int c)
{
	struct gstack *s = &st->s[slot];
	struct gframe *f = top(s);
	uint32_t i = f->a & 0xffff;
	switch (f->phase) {
	case O_OPEN:
	case O_COMMA:
	case O_AFTER:
		if (is_ws(c))
			return ws_step(f, c) ? ST_OK : ST_DEAD;
		if (f->phase == O_AFTER) {
			if (c == ',' && i < n->u.obj.n) {
				f->phase = O_COMMA;
				f->x = 0;
				return ST_OK;
			}
		} else if (c == '"' && i < n->u.obj.n) {
			f->phase = O_KEY;
			f->x = 0;
			f->a = i | 1u << 16;    /* the quote is byte 0 of every key */
			f->b = window(g, n, i);
			return ST_OK;
		}
		if (c == '}' && f->phase != O_COMMA && !required_left(g, n, i)) {
			child_done(g, s);
			return ST_OK;
		}
		return ST_DEAD;
	case O_KEY: {
		uint32_t pos = f->a >> 16;
		uint64_t keep = 0;
		for (uint64_t m = f->b; m; m &= m - 1) {
			uint32_t j = (uint32_t)__builtin_ctzll(m);
			const struct gprop *p = &g->props[n->u.obj.first + j];
			if (p->key_len > pos && (unsigned char)g->text[p->key_off + pos] == c)
				keep |= 1ull << j;
		}
		if (!keep)
			return ST_DEAD;
		pos++;
		for (uint64_t m = keep; m; m &= m - 1) {
			uint32_t j = (uint32_t)__builtin_ctzll(m);
			if (g->props[n->u.obj.first + j].key_len == pos) {
				/* keys end with an unescaped quote: no key is a
				 * prefix of another, so this one is the key */
				f->phase = O_COLON;
				f->a = j;
				f->b = 0;
				return ST_OK;
			}
		}
		f->a = i | pos << 16;
		f->b = keep;
		return ST_OK;
	}
	case O_COLON:
		if (is_ws(c))
			return ws_step(f, c) ? ST_OK : ST_DEAD;
		if (c != ':')
			return ST_DEAD;
		f->phase = O_VALUE_WS;
		f->x = 0;
		return ST_OK;
	case O_VALUE_WS:
		if (is_ws(c))
			return ws_step(f, c) ? ST_OK : ST_DEAD;
		f->phase = O_VALUE;
		f->x = 0;
		start_value(g, st, slot, g->props[n->u.obj.first + i].node, c, 0);
		return s->depth ? ST_OK : ST_DEAD;
	}
	return ST_DEAD;
}

static enum step feed_map(const struct grammar *g, struct gstate *st, uint32_t slot,
			  const struct gnode *n, int c)
{
	struct gstack *s = &st->s[slot];
	struct gframe *f = top(s);
	switch (f->phase) {
	case M_OPEN:
	case M_COMMA:
	case M_AFTER:
	case M_COLON:
	case M_VALUE_WS:
		if (is_ws(c))
			return ws_step(f, c) ? ST_OK : ST_DEAD;
		break;
	}
	switch (f->phase) {
	case M_OPEN:
	case M_COMMA:
		if (c == '}' && f->phase == M_OPEN) {
			child_done(g, s);
			return ST_OK;
		}
		if (c != '"')
			return ST_DEAD;
		f->phase = M_KEY;
		f->x = 0;
		start_value(g, st, slot, g->free_string, c, 0);
		return s->depth ? ST_OK : ST_DEAD;
	case M_COLON:
		if (c != ':')
			return ST_DEAD;
		f->phase = M_VALUE_WS;
		f->x = 0;
		return ST_OK;
	case M_VALUE_WS:
		f->phase = M_VALUE;
		f->x = 0;
		start_value(g, st, slot, n->u.map.value, c, 0);
		return s->depth ? ST_OK : ST_DEAD;
	case M_AFTER:
		if (c == ',') {
			f->phase = M_COMMA;
			f->x = 0;
			return ST_OK;
		}
		if (c == '}') {
			child_done(g, s);
			return ST_OK;
		}
		return ST_DEAD;
	}
	return ST_DEAD;
}

static enum step feed_array(const struct grammar *g, struct gstate *st, uint32_t slot,
			    const struct gnode *n, int c)
{
	struct gstack *s = &st->s[slot];
	struct gframe *f = top(s);
	uint32_t count = f->a;
	if (is_ws(c))
		return ws_step(f, c) ? ST_OK : ST_DEAD;
	switch (f->phase) {
	case A_OPEN:
	case A_AFTER:
		if (c == ']' && count >= n->u.arr.min) {
			child_done(g, s);
			return ST_OK;
		}
		if (f->phase == A_AFTER) {
			if (c != ',' || count >= n->u.arr.max)
				return ST_DEAD;
			f->phase = A_COMMA;
			f->x = 0;
			return ST_OK;
		}
		if (n->u.arr.max == 0)
			return ST_DEAD;
		/* fall through */
	case A_COMMA:
		f->phase = A_VALUE;
		f->x = 0;
		start_value(g, st, slot, n->u.arr.items, c, 0);
		return s->depth ? ST_OK : ST_DEAD;
	}
	return ST_DEAD;
}

static bool str_counted(const struct gnode *n)
{
	return n->u.str.min > 0 || n->u.str.max != GN_UNBOUNDED;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One more character in the string (within maxLength, checked before). */
static void str_count(const struct gnode *n, struct gframe *f)
{
	if (str_counted(n) && f->a < GN_UNBOUNDED - 1)
		f->a++;
}

static enum step feed_string(const struct grammar *g, struct gstack *s, const struct gnode *n, int c)
{
	struct gframe *f = top(s);
	bool room = !str_counted(n) || f->a < n->u.str.max;
	switch (f->phase) {
	case S_IN:
		if (c == '"') {
			if (str_counted(n) && f->a < n->u.str.min)
				return ST_DEAD;
			child_done(g, s);
			return ST_OK;
		}
		if (c == GM_END || c < 0x20 || !room)
			return ST_DEAD;
		if (c == '\\') {
			f->phase = S_ESC;
			return ST_OK;
		}
		if (c < 0x80) {
			str_count(n, f);
			return ST_OK;
		}
		if (c >= 0xc2 && c <= 0xdf)
			f->x = 1;
		else if (c >= 0xe0 && c <= 0xef)
			f->x = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			f->x = 3;
		else
			return ST_DEAD;
		f->phase = S_UTF8;
		f->b = (uint64_t)c;       /* the lead byte limits the next one */
		str_count(n, f);
		return ST_OK;
	case S_UTF8: {
		int lo = 0x80, hi = 0xbf;
		switch (f->b) {
		case 0xe0: lo = 0xa0; break;
		case 0xed: hi = 0x9f; break;
		case 0xf0: lo = 0x90; break;
		case 0xf4: hi = 0x8f; break;
		}
		if (c < lo || c > hi)
			return ST_DEAD;
		f->b = 0;
		if (--f->x == 0)
			f->phase = S_IN;
		return ST_OK;
	}
	case S_ESC:
		if (c == 'u') {
			f->phase = S_HEX;
			f->x = 0;
			return ST_OK;
		}
		if (c == GM_END || c == 0 || !strchr("\"\\/bfnrt", c))
			return ST_DEAD;
		f->phase = S_IN;
		str_count(n, f);
		return ST_OK;
	case S_HEX: {
		int h = c == GM_END ? -1 : hexval(c);
		if (h < 0)
			return ST_DEAD;
		/* no surrogates (\ud800-\udfff): a lone one is not a character */
		if (f->x == 1 && f->b == 0xd && h >= 8)
			return ST_DEAD;
		if (f->x == 0)
			f->b = (uint64_t)h;
		if (++f->x == 4) {
			f->phase = S_IN;
			f->x = 0;
			f->b = 0;
			str_count(n, f);
		}
		return ST_OK;
	}
	}
	return ST_DEAD;
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* A number frame that cannot take c: it ends (pop, refeed) if complete. */
static enum step number_end(const struct grammar *g, struct gstack *s, const struct gnode *n)
{
	struct gframe *f = top(s);
	switch (f->phase) {
	case N_ZERO:
	case N_INT:
		if (bounded(n) && !in_bounds(n, f->x ? -(int64_t)f->b : (int64_t)f->b))
			return ST_DEAD;
		break;
	case N_FRAC:
	case N_EXP:
		break;
	default:
		return ST_DEAD;
	}
	child_done(g, s);
	return ST_REFEED;
}

static enum step feed_number(const struct grammar *g, struct gstack *s, const struct gnode *n, int c)
{
	if (nbounded(n))
		return feed_bnumber(g, s, n, c);
	struct gframe *f = top(s);
	bool integer = n->kind == GN_INTEGER;
	bool digit = c != GM_END && is_digit(c);
	switch (f->phase) {
	case N_MINUS:
		if (c == '0') {
			if (!int_feasible(n, true, 0, 1))
				return ST_DEAD;
			f->phase = N_ZERO;
			return ST_OK;
		}
		if (!digit || !int_feasible(n, true, c - '0', 1))
			return ST_DEAD;
		f->phase = N_INT;
		f->a = 1;
		f->b = bounded(n) ? (uint64_t)(c - '0') : 0;
		return ST_OK;
	case N_ZERO:
	case N_INT:
		if (digit && f->phase == N_INT) {
			int cap = integer ? MAX_INTEGER_DIGITS : MAX_INT_DIGITS;
			if ((int)f->a >= cap)
				return ST_DEAD;
			if (bounded(n)) {
				int64_t v = (int64_t)f->b * 10 + (c - '0');
				if (!int_feasible(n, f->x, v, (int)f->a + 1))
					return ST_DEAD;
				f->b = (uint64_t)v;
			}
			f->a++;
			return ST_OK;
		}
		if (!integer && c == '.') {
			f->phase = N_DOT;
			f->a = 0;
			return ST_OK;
		}
		if (!integer && (c == 'e' || c == 'E')) {
			f->phase = N_E;
			f->a = 0;
			return ST_OK;
		}
		if (digit)
			return ST_DEAD;       /* a digit after a leading zero */
		return number_end(g, s, n);
	case N_DOT:
		if (!digit)
			return ST_DEAD;
		f->phase = N_FRAC;
		f->a = 1;
		return ST_OK;
	case N_FRAC:
		if (digit)
			return f->a < MAX_FRAC_DIGITS ? (f->a++, ST_OK) : ST_DEAD;
		if (c == 'e' || c == 'E') {
			f->phase = N_E;
			f->a = 0;
			return ST_OK;
		}
		return number_end(g, s, n);
	case N_E:
		if (c == '+' || c == '-') {
			f->phase = N_ESIGN;
			return ST_OK;
		}
		/* fall through */
	case N_ESIGN:
		if (!digit)
			return ST_DEAD;
		f->phase = N_EXP;
		f->a = 1;
		return ST_OK;
	case N_EXP:
		if (digit)
			return f->a < MAX_EXP_DIGITS ? (f->a++, ST_OK) : ST_DEAD;
		return number_end(g, s, n);
	}
	return ST_DEAD;
}

static enum step feed_literal(const struct grammar *g, struct gstack *s, int c)
{
	struct gframe *f = top(s);
	uint32_t lo = (uint32_t)f->b, hi = (uint32_t)(f->b >> 32);
	if (c != GM_END && narrow(g, &lo, &hi, f->a, c)) {
		f->a++;
		f->b = lo | (uint64_t)hi << 32;
		literal_maybe_done(g, s);
		return ST_OK;
	}
	/* Not a longer literal: this one ends here, if complete. */
	if (g->lits[(uint32_t)f->b].len != f->a)
		return ST_DEAD;
	child_done(g, s);
	return ST_REFEED;
}

/* The root frame's value: the root, or with alternatives the chosen
 * branch of the root anyOf (f->b, once R_PRE is over). */
static uint32_t root_value(const struct grammar *g, const struct gframe *f)
{
	return g->n_alt ? g->ids[g->nodes[g->root].u.list.first + (uint32_t)f->b] : g->root;
}

/* R_PRE with alternatives: b holds those that still agree with the bytes
 * so far; where one of them is complete (none is a prefix of another, so
 * it is the only one left) the value that follows is its branch. */
static void feed_alts(const struct grammar *g, struct gstack *s, struct gframe *f, int c)
{
	uint64_t keep = 0;
	for (uint32_t k = 0; k < g->n_alt && c != GM_END; k++) {
		uint32_t len = g->alt_off[k + 1] - g->alt_off[k];
		if ((f->b >> k & 1) && f->a < len && (unsigned char)g->alt_text[g->alt_off[k] + f->a] == c)
			keep |= 1ull << k;
	}
	if (!keep) {
		s->depth = 0;
		return;
	}
	f->a++;
	f->b = keep;
	for (uint32_t k = 0; k < g->n_alt; k++)
		if ((keep >> k & 1) && g->alt_off[k + 1] - g->alt_off[k] == f->a) {
			f->phase = R_START;
			f->a = 0;
			f->b = k;
			return;
		}
}

/* Feed c to stack slot of st (which may grow by anyOf branches). */
static void feed_stack(const struct grammar *g, struct gstate *st, uint32_t slot, int c)
{
	for (;;) {
		struct gstack *s = &st->s[slot];
		if (!s->depth)
			return;
		struct gframe *f = top(s);
		enum step r;
		if (f->node == GF_ROOT) {
			if (f->phase == R_PRE && g->n_alt) {
				feed_alts(g, s, f, c);
				return;
			}
			if (f->phase == R_PRE || f->phase == R_POST) {
				/* the frame's fixed text, byte by byte */
				const char *t = f->phase == R_PRE ? g->pre : g->post;
				uint32_t n = f->phase == R_PRE ? g->n_pre : g->n_post;
				if (c == GM_END || (unsigned char)t[f->a] != c) {
					s->depth = 0;
				} else if (++f->a == n) {
					f->phase = f->phase == R_PRE ? R_START : R_DONE;
					f->a = 0;
				}
				return;
			}
			if (f->phase == R_DONE) {
				if (c != GM_END)
					s->depth = 0;
				return;
			}
			/* R_START: the value, from its first byte (no
			 * whitespace before it: a model would pad with it) */
			if (c == GM_END || is_ws(c)) {
				s->depth = 0;
			} else {
				f->phase = R_VALUE;
				f->x = 0;
				start_value(g, st, slot, root_value(g, f), c, 0);
			}
			return;
		}
		const struct gnode *n = node_at(g, f->node, NULL);
		switch (n->kind) {
		case GN_OBJECT:
			r = c == GM_END ? ST_DEAD : feed_object(g, st, slot, n, c);
			break;
		case GN_MAP:
			r = c == GM_END ? ST_DEAD : feed_map(g, st, slot, n, c);
			break;
		case GN_ARRAY:
			r = c == GM_END ? ST_DEAD : feed_array(g, st, slot, n, c);
			break;
		case GN_STRING:
			r = feed_string(g, s, n, c);
			break;
		case GN_NUMBER:
		case GN_INTEGER:
			r = feed_number(g, s, n, c);
			break;
		case GN_LITERAL:
			r = feed_literal(g, s, c);
			break;
		default:
			r = ST_DEAD;
		}
		s = &st->s[slot];
		if (r == ST_DEAD)
			s->depth = 0;
		if (r != ST_REFEED)
			return;
	}
}

void gstate_init(const struct grammar *g, struct gstate *st)
{
	st->n = 1;
	st->s[0].depth = 1;
	st->s[0].f[0] = (struct gframe){ .node = GF_ROOT, .phase = g->n_pre || g->n_alt ? R_PRE : R_START };
	if (g->n_alt)
		st->s[0].f[0].b = g->n_alt == 64 ? UINT64_MAX : (1ull << g->n_alt) - 1;
}

void gstate_copy(struct gstate *dst, const struct gstate *src)
{
	dst->n = src->n;
	for (uint32_t i = 0; i < src->n; i++)
		copy_stack(&dst->s[i], &src->s[i]);
}

static bool same_stack(const struct gstack *a, const struct gstack *b)
{
	return a->depth == b->depth && !memcmp(a->f, b->f, sizeof(struct gframe) * a->depth);
}

uint32_t gstate_feed(const struct grammar *g, const struct gstate *src, int c, struct gstate *dst)
{
	dst->n = 0;
	for (uint32_t i = 0; i < src->n && dst->n < GM_MAX_STACKS; i++) {
		uint32_t slot = dst->n++;
		copy_stack(&dst->s[slot], &src->s[i]);
		feed_stack(g, dst, slot, c);
	}
	/* Keep the live stacks, once each. */
	uint32_t k = 0;
	for (uint32_t i = 0; i < dst->n; i++) {
		if (!dst->s[i].depth)
			continue;
		bool dup = false;
		for (uint32_t j = 0; j < k && !dup; j++)
			dup = same_stack(&dst->s[j], &dst->s[i]);
		if (dup)
			continue;
		if (k != i)
			copy_stack(&dst->s[k], &dst->s[i]);
		k++;
	}
	dst->n = k;
	return k;
}

bool gstate_done(const struct gstate *st)
{
	if (!st->n)
		return false;
	for (uint32_t i = 0; i < st->n; i++)
		if (st->s[i].depth != 1 || st->s[i].f[0].phase != R_DONE)
			return false;
	return true;
}

bool gstate_can_end(const struct grammar *g, const struct gstate *st)
{
	for (uint32_t i = 0; i < st->n; i++) {
		/* most states are plainly not at the end: skip the copy */
		const struct gstack *s = &st->s[i];
		if (s->depth == 1 && s->f[0].phase == R_DONE)
			return true;
		if (s->depth == 1)
			continue;
		const struct gframe *f = &s->f[s->depth - 1];
		const struct gnode *n = node_at(g, f->node, NULL);
		if (n->kind != GN_NUMBER && n->kind != GN_INTEGER && n->kind != GN_LITERAL)
			continue;
		struct gstate one;
		one.n = 1;
		copy_stack(&one.s[0], s);
		feed_stack(g, &one, 0, GM_END);
		if (one.s[0].depth)
			return true;
	}
	return false;
}

bool gstate_string_room(const struct grammar *g, const struct gstate *st, uint32_t *room)
{
	if (st->n != 1)
		return false;
	const struct gstack *s = &st->s[0];
	const struct gframe *f = &s->f[s->depth - 1];
	if (f->node == GF_ROOT || f->phase != S_IN)
		return false;
	const struct gnode *n = node_at(g, f->node, NULL);
	if (n->kind != GN_STRING)
		return false;
	*room = !str_counted(n) ? GN_INF : n->u.str.max == GN_UNBOUNDED ? GN_INF - 1 : n->u.str.max - f->a;
	return true;
}

size_t gstate_key(const struct gstate *st, unsigned char *out)
{
	size_t o = 0;
	out[o++] = (unsigned char)st->n;
	for (uint32_t i = 0; i < st->n; i++) {
		out[o++] = (unsigned char)st->s[i].depth;
		size_t b = sizeof(struct gframe) * st->s[i].depth;
		memcpy(out + o, st->s[i].f, b);
		o += b;
	}
	return o;
}

/* ---- measures: the smallest completion ---- */

static uint32_t sat_add(uint32_t a, uint32_t b)
{
	return a >= GN_INF - b ? GN_INF : a + b;
}

static uint32_t sat_mul(uint32_t a, uint32_t b)
{
	if (!a || !b)
		return 0;
	return a > (GN_INF - 1) / b ? GN_INF : a * b;
}

static uint32_t digits(uint64_t v)
{
	uint32_t d = 1;
	while (v >= 10) {
		v /= 10;
		d++;
	}
	return d;
}

/* The shortest integer text within the node's bounds. */
static uint32_t int_min_len(const struct gnode *n)
{
	if (!bounded(n) || in_bounds(n, 0))
		return 1;
	if (n->u.num.has_lo && n->u.num.lo > 0)
		return digits((uint64_t)n->u.num.lo);
	return 1 + digits((uint64_t)(-(n->u.num.hi + 1)) + 1);
}

/* One pass over the nodes (backwards if back); true if something changed. */
static bool measure_pass(struct grammar *g, bool back)
{
	bool changed = false;
	for (uint32_t step = 0; step < g->n_nodes; step++) {
		uint32_t i = back ? g->n_nodes - 1 - step : step;
		const struct gnode *n = &g->nodes[i];
		uint32_t len = GN_INF, dep = 255;
		switch (n->kind) {
		case GN_ANYOF:
			for (uint32_t k = 0; k < n->u.list.n; k++) {
				uint32_t a = g->ids[n->u.list.first + k];
				if (g->min_len[a] < len)
					len = g->min_len[a];
				if (g->min_depth[a] < dep)
					dep = g->min_depth[a];
			}
			break;
		case GN_REF:
			len = g->min_len[n->u.ref.target];
			dep = g->min_depth[n->u.ref.target];
			break;
		case GN_OBJECT: {
			uint32_t nreq = 0, deep = 0;
			len = 2;
			for (uint32_t k = 0; k < n->u.obj.n; k++) {
				const struct gprop *p = &g->props[n->u.obj.first + k];
				if (!p->required)
					continue;
				len = sat_add(len, sat_add(p->key_len + 1 + (nreq ? 1 : 0), g->min_len[p->node]));
				if (g->min_depth[p->node] > deep)
					deep = g->min_depth[p->node];
				nreq++;
			}
			dep = 1 + deep;
			break;
		}
		case GN_MAP:
			len = 2;
			dep = 1;
			break;
		case GN_ARRAY: {
			uint32_t mn = n->u.arr.min, it = g->min_len[n->u.arr.items];
			len = mn ? sat_add(2 + (mn - 1), sat_mul(mn, it)) : 2;
			dep = 1 + (mn ? g->min_depth[n->u.arr.items] : 0);
			break;
		}
		case GN_STRING:
			len = sat_add(2, n->u.str.min);
			dep = 1;
			break;
		case GN_NUMBER:
			if (nbounded(n)) {
				uint32_t p = bnum_extra(n, false, 0, 0, false, 0), m = bnum_extra(n, true, 0, 0, false, 0);
				len = p < sat_add(m, 1) ? p : sat_add(m, 1);
			} else {
				len = 1;
			}
			dep = 1;
			break;
		case GN_INTEGER:
			len = int_min_len(n);
			dep = 1;
			break;
		case GN_LITERAL:
			for (uint32_t k = 0; k < n->u.list.n; k++)
				if (g->lits[n->u.list.first + k].len < len)
					len = g->lits[n->u.list.first + k].len;
			dep = 1;
			break;
		}
		if (dep > 255)
			dep = 255;
		if (len < g->min_len[i] || dep < g->min_depth[i]) {
			if (len < g->min_len[i])
				g->min_len[i] = len;
			if (dep < g->min_depth[i])
				g->min_depth[i] = (uint8_t)dep;
			changed = true;
		}
	}
	return changed;
}

int grammar_measure(struct grammar *g, const char **why)
{
	g->min_depth = malloc(g->n_nodes);
	g->min_len = malloc(sizeof(*g->min_len) * g->n_nodes);
	if (!g->min_depth || !g->min_len) {
		*why = "out of memory";
		return -ENOMEM;
	}
	memset(g->min_depth, 255, g->n_nodes);
	for (uint32_t i = 0; i < g->n_nodes; i++)
		g->min_len[i] = GN_INF;
	/* Passes in both directions settle a chain of references either way
	 * round at once; what has not settled after MEASURE_PASSES (a schema
	 * built to be slow) stays infinite: such a node is never started,
	 * which keeps every live state completable. */
	for (uint32_t pass = 0; pass < MEASURE_PASSES && measure_pass(g, pass & 1); pass++)
		;
	if (g->min_len[g->root] == GN_INF) {
		*why = "the schema has no finite value (a recursion with no way out)";
		return -EINVAL;
	}
	if (g->min_depth[g->root] + 1 > GM_MAX_DEPTH) {
		*why = "the schema's values nest deeper than 31 levels";
		return -E2BIG;
	}
	return 0;
}

/* Fewest more digits that put the integer written so far (sign, v of nd
 * digits; nd 0: the sign only) within bounds. */
static uint32_t int_min_extra(const struct gnode *n, bool neg, int64_t v, int nd)
{
	if (nd == 0) {
		uint32_t best = GN_INF;
		for (int d = 0; d <= 9; d++) {
			uint32_t e = int_min_extra(n, neg, d, 1);
			if (e != GN_INF && e + 1 < best)
				best = e + 1;
		}
		return best;
	}
	if (!bounded(n))
		return 0;
	if (v == 0)
		return in_bounds(n, 0) ? 0 : GN_INF;
	if (in_bounds(n, neg ? -v : v))
		return 0;
	for (int k = 1; nd + k <= MAX_INTEGER_DIGITS; k++) {
		int64_t lo = v * pow10_tab[k], hi = lo + pow10_tab[k] - 1;
		if (neg ? meets(n, -hi, -lo) : meets(n, lo, hi))
			return (uint32_t)k;
	}
	return GN_INF;
}

/* Required properties from j on, each with its comma, key and colon. */
static uint32_t rest_required(const struct grammar *g, const struct gnode *n, uint32_t j)
{
	uint32_t sum = 0;
	for (; j < n->u.obj.n; j++) {
		const struct gprop *p = &g->props[n->u.obj.first + j];
		if (p->required)
			sum = sat_add(sum, sat_add(p->key_len + 2, g->min_len[p->node]));
	}
	return sum;
}

/* Property j, then the required ones after it, then the brace. */
static uint32_t prop_then_rest(const struct grammar *g, const struct gnode *n, uint32_t j, uint32_t key_done)
{
	const struct gprop *p = &g->props[n->u.obj.first + j];
	uint32_t r = sat_add(p->key_len - key_done + 1, g->min_len[p->node]);
	return sat_add(sat_add(r, rest_required(g, n, j + 1)), 1);
}

/* Bytes that close frame f (in its phase; a frame under the top one
 * waits for its child, which counts apart). */
static uint32_t frame_rest(const struct grammar *g, const struct gframe *f)
{
	if (f->node == GF_ROOT) {
		switch (f->phase) {
		case R_PRE:
			if (g->n_alt) {
				uint32_t best = GN_INF;
				for (uint32_t k = 0; k < g->n_alt; k++) {
					uint32_t len = g->alt_off[k + 1] - g->alt_off[k];
					uint32_t node = g->ids[g->nodes[g->root].u.list.first + k];
					if ((f->b >> k & 1) && f->a < len) {
						uint32_t r = sat_add(len - f->a, g->min_len[node]);
						best = r < best ? r : best;
					}
				}
				return sat_add(best, g->n_post);
			}
			return sat_add(g->n_pre - f->a, sat_add(g->min_len[g->root], g->n_post));
		case R_START: return sat_add(g->min_len[root_value(g, f)], g->n_post);
		case R_VALUE: return g->n_post;    /* the value's frames count apart */
		case R_POST: return g->n_post - f->a;
		default: return 0;
		}
	}
	uint32_t id;
	const struct gnode *n = node_at(g, f->node, &id);
	if (nbounded(n)) {
		int nd = (int)(f->a & 0xff), fr = (int)(f->a >> 8);
		switch (f->phase) {
		case N_MINUS:
			return bnum_extra(n, true, 0, 0, false, 0);
		case N_ZERO:
		case N_INT:
			return bnum_extra(n, f->x, (int64_t)f->b, nd, false, 0);
		case N_DOT:
		case N_FRAC:
			return bnum_extra(n, f->x, (int64_t)f->b, nd, true, fr);
		}
	}
	switch (f->phase) {
	case O_OPEN: {
		uint32_t r = rest_required(g, n, 0);
		return r ? r : 1;         /* the first needs no comma: r - 1 + '}' */
	}
	case O_COMMA: {
		uint32_t best = GN_INF;
		for (uint64_t m = window(g, n, f->a & 0xffff); m; m &= m - 1) {
			uint32_t r = prop_then_rest(g, n, (uint32_t)__builtin_ctzll(m), 0);
			if (r < best)
				best = r;
		}
		return best;
	}
	case O_KEY: {
		uint32_t best = GN_INF, pos = f->a >> 16;
		for (uint64_t m = f->b; m; m &= m - 1) {
			uint32_t r = prop_then_rest(g, n, (uint32_t)__builtin_ctzll(m), pos);
			if (r < best)
				best = r;
		}
		return best;
	}
	case O_COLON:
		return prop_then_rest(g, n, f->a, g->props[n->u.obj.first + f->a].key_len);
	case O_VALUE_WS:
		return sat_add(g->min_len[g->props[n->u.obj.first + f->a].node],
			       sat_add(rest_required(g, n, f->a + 1), 1));
	case O_VALUE:
		return sat_add(rest_required(g, n, (f->a & 0xffff) + 1), 1);
	case O_AFTER:
		return sat_add(rest_required(g, n, f->a & 0xffff), 1);
	case M_OPEN:
	case M_VALUE:
	case M_AFTER:
		return 1;
	case M_KEY:
	case M_COLON:
		return sat_add(g->min_len[n->u.map.value], 2);
	case M_VALUE_WS:
		return sat_add(g->min_len[n->u.map.value], 1);
	case M_COMMA:
		return sat_add(g->min_len[n->u.map.value], 4);
	case A_OPEN:
	case A_VALUE:
	case A_AFTER:
	case A_COMMA: {
		uint32_t mn = n->u.arr.min, c = f->a, it = g->min_len[n->u.arr.items], r;
		if (f->phase == A_OPEN)
			return mn ? sat_add(sat_mul(mn, it), mn) : 1;
		if (f->phase == A_VALUE)
			c++;
		r = mn > c ? mn - c : 0;
		if (f->phase == A_COMMA)
			return sat_add(it, sat_add(sat_mul(r ? r - 1 : 0, sat_add(it, 1)), 1));
		return sat_add(sat_mul(r, sat_add(it, 1)), 1);
	}
	case S_IN:
	case S_UTF8:
	case S_ESC:
	case S_HEX: {
		uint32_t c = f->a, need;
		if (f->phase == S_ESC || f->phase == S_HEX)
			c++;
		need = n->u.str.min > c && str_counted(n) ? n->u.str.min - c : 0;
		if (f->phase == S_UTF8)
			need += f->x;
		else if (f->phase == S_ESC)
			need += 1;
		else if (f->phase == S_HEX)
			need += 4u - f->x;
		return need + 1;
	}
	case N_MINUS:
		return n->kind == GN_INTEGER ? int_min_extra(n, true, 0, 0) : 1;
	case N_ZERO:
		return 0;
	case N_INT:
		return n->kind == GN_INTEGER ? int_min_extra(n, f->x, (int64_t)f->b, (int)f->a) : 0;
	case N_DOT:
	case N_E:
	case N_ESIGN:
		return 1;
	case N_FRAC:
	case N_EXP:
		return 0;
	case L_IN: {
		uint32_t best = GN_INF;
		for (uint32_t k = (uint32_t)f->b; k < (uint32_t)(f->b >> 32); k++)
			if (g->lits[k].len - f->a < best)
				best = g->lits[k].len - f->a;
		return best;
	}
	}
	(void)id;
	return GN_INF;
}

uint32_t gstate_min_completion(const struct grammar *g, const struct gstate *st)
{
	uint32_t best = GN_INF;
	for (uint32_t i = 0; i < st->n; i++) {
		uint32_t sum = 0;
		for (uint32_t k = 0; k < st->s[i].depth; k++)
			sum = sat_add(sum, frame_rest(g, &st->s[i].f[k]));
		if (sum < best)
			best = sum;
	}
	return best;
}
