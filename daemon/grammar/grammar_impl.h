/* grammar_impl.h - the compiled schema's nodes and the matcher's frames.
 * Internal to grammar/. */
#ifndef SMK_GRAMMAR_IMPL_H
#define SMK_GRAMMAR_IMPL_H

#include "grammar/grammar.h"

enum gnode_kind {
	GN_ANYOF,      /* u.list: alternatives (node ids in g->ids) */
	GN_REF,        /* u.ref: another node (a $ref, resolved after compiling) */
	GN_OBJECT,     /* u.obj: properties in order (g->props) */
	GN_MAP,        /* u.map: free keys, every value of node u.map.value */
	GN_ARRAY,      /* u.arr */
	GN_STRING,     /* u.str: length bounds in characters (code points) */
	GN_NUMBER,     /* u.num: optional bounds, in multiples of 1e-6 */
	GN_INTEGER,    /* u.num: optional bounds */
	GN_LITERAL,    /* u.list: JSON texts in g->lits, sorted bytewise */
};

#define GN_UNBOUNDED UINT32_MAX
/* A bounded number is written with at most 6 decimals and no exponent;
 * its value and bounds are integers in units of 1e-6. */
#define GN_NUM_SCALE 1000000LL

struct gnode {
	uint8_t kind;
	union {
		struct { uint32_t first, n; } list;
		struct { uint32_t target; } ref;
		struct { uint32_t first, n; } obj;
		struct { uint32_t value; } map;
		struct { uint32_t items, min, max; } arr;
		struct { uint32_t min, max; } str;
		struct { bool has_lo, has_hi; int64_t lo, hi; } num;
	} u;
};

/* A property: its key as JSON text with the quotes ("name"), in g->text. */
struct gprop {
	uint32_t key_off, key_len;
	uint32_t node;
	bool required;
};

/* A literal (enum/const member, true/false/null) as compact JSON text. */
struct glit {
	uint32_t off, len;
};

struct grammar {
	struct gnode *nodes;
	uint32_t n_nodes, cap_nodes;
	struct gprop *props;
	uint32_t n_props, cap_props;
	uint32_t *ids;                 /* anyOf alternatives */
	uint32_t n_ids, cap_ids;
	struct glit *lits;
	uint32_t n_lits, cap_lits;
	char *text;                    /* key and literal bytes */
	uint32_t n_text, cap_text;
	uint32_t root;                 /* the value's node */
	/* Fixed text around the value (grammar_set_frame; tool calls): the
	 * root frame reads pre before the value and post after it. */
	char pre[GM_MAX_FRAME], post[GM_MAX_FRAME];
	uint32_t n_pre, n_post;
	/* grammar_set_frame_alts: n_alt texts before the value, the k-th
	 * alt_text[alt_off[k], alt_off[k + 1]), followed by the root anyOf's
	 * k-th branch.  The root frame in R_PRE keeps the alternatives still
	 * possible as a bit mask in b, then the chosen one's index in b. */
	char *alt_text;
	uint32_t alt_off[GM_MAX_ALTS + 1];
	uint32_t n_alt;
	/* grammar_set_trigger: the output before the value, free text up to
	 * and including this (n_trig 0: none, the value starts at once) */
	char trig[GM_MAX_FRAME];
	uint32_t n_trig;
	uint32_t free_string;          /* a map's keys */
	/* Per node, from grammar_measure: the fewest frames a complete value
	 * needs on the stack (a value is started only where they fit, so a
	 * live state can always be completed), and the fewest bytes of a
	 * complete value (the budget of gmatch_mask_budget). */
	uint8_t *min_depth;
	uint32_t *min_len;
};

#define GN_INF UINT32_MAX

/* Fill min_depth and min_len (after every $ref is resolved).  -EINVAL when
 * the root has no finite value (a recursion with no way out), -E2BIG when
 * it cannot fit GM_MAX_DEPTH, -ENOMEM; *why says which. */
int grammar_measure(struct grammar *g, const char **why);

/* ---- the matcher's state ---- */

/* One open value.  Unused fields are zero, so that equal states have equal
 * bytes (they key the mask cache). */
struct gframe {
	uint16_t node;                 /* GF_ROOT for the bottom frame */
	uint8_t phase;
	uint8_t x;                     /* whitespace run, UTF-8 bytes due, sign */
	uint32_t a;                    /* index, count or position */
	uint64_t b;                    /* candidates, value, range */
};

#define GF_ROOT 0xffff

struct gstack {
	uint32_t depth;                /* frames in f; 0: dead */
	struct gframe f[GM_MAX_DEPTH];
};

struct gstate {
	uint32_t n;                    /* live stacks */
	struct gstack s[GM_MAX_STACKS];
};

#define GM_END 256                 /* the end of the text, fed like a byte */

/* The start state. */
void gstate_init(const struct grammar *g, struct gstate *st);
/* dst = src fed with byte c (0..255 or GM_END); returns dst->n (0: dead).
 * Copies only the frames in use. */
uint32_t gstate_feed(const struct grammar *g, const struct gstate *src, int c, struct gstate *dst);
void gstate_copy(struct gstate *dst, const struct gstate *src);
/* Every live stack has finished the value (nothing may follow). */
bool gstate_done(const struct gstate *st);
/* Some stack may end here. */
bool gstate_can_end(const struct grammar *g, const struct gstate *st);
/* The single stack's top is a string, between characters: any plain
 * character may follow, up to *room more of them (GN_INF: no bound, and
 * the state stays the same; the trie walk's shortcut). */
bool gstate_string_room(const struct grammar *g, const struct gstate *st, uint32_t *room);
/* The fewest bytes that complete the value from this state (0: it may end
 * here; GN_INF: none found). */
uint32_t gstate_min_completion(const struct grammar *g, const struct gstate *st);
/* The state's canonical bytes (for the cache): at most
 * sizeof(struct gstate); returns the length. */
size_t gstate_key(const struct gstate *st, unsigned char *out);

#endif
