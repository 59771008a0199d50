/* grammar.h - structured outputs: a JSON schema compiled into an automaton
 * over bytes, and the mask of the tokens that keep it alive.
 *
 * Three objects, with different lifetimes:
 *
 *   struct grammar  a compiled schema (or "any JSON object" for the
 *                   json_object mode).  Immutable once built; compiled once
 *                   per request by the HTTP thread, where an unsupported
 *                   keyword becomes a 400 naming it.
 *   struct gvocab   a byte trie over a tokenizer's token pieces (what each
 *                   token adds to the output text), built once per tokenizer
 *                   and shared read-only by every sequence.
 *   struct gmatch   one sequence's position in the grammar: the automaton's
 *                   state, the masks already computed (cached per state) and
 *                   the scratch of the trie walk.  Allocated at admission;
 *                   nothing is allocated per token.
 *
 * The automaton.  A schema becomes a graph of nodes (object with ordered
 * properties, map, array, string, number, integer, literal set, anyOf, any
 * value).  The matcher's state is a small set of stacks of frames (one frame
 * per open value: the node and where in it we are); a set because anyOf
 * branches that the bytes seen so far do not tell apart are followed side by
 * side (at most GM_MAX_STACKS of them; a branch beyond that is dropped, which
 * can only narrow what is generated, never let invalid text through).
 * Feeding a byte advances every stack and keeps the live ones; the state is
 * dead when none is left.  Every live state can still be completed into a
 * valid value (required properties, minItems, minLength and integer bounds
 * are checked as prefixes), so generation never paints itself into a corner.
 *
 * The mask.  A token is allowed when feeding all its bytes leaves the state
 * alive.  gmatch_mask walks the vocabulary's trie from the current state,
 * skipping every subtree whose first byte already kills it, and allowing a
 * whole subtree at once where the state is inside a free string and every
 * token below continues the string with plain, complete UTF-8 (what makes a
 * string's mask cost about one pass over the allowed ids).  The mask is
 * cached per state (the state's bytes are the key), so a state seen again -
 * inside every free string, between the same properties - costs a lookup.
 * End-of-generation tokens are allowed where the value is complete.
 *
 * Generated JSON: properties come in the schema's order, required ones
 * always, optional ones possibly skipped; no property outside `properties`
 * is generated (so additionalProperties false or true both validate);
 * between tokens no whitespace, one space, or a newline and at most
 * GM_MAX_WS spaces or tabs, and none before or after the value;
 * strings are valid UTF-8 with JSON escapes (no \u escapes of surrogates);
 * numbers have at most 15 integer digits (18 for integers), 15 fraction
 * digits and 2 exponent digits; a number with bounds at most 12 integer
 * digits, 6 decimals and no exponent.  docs/structured-outputs.md lists the
 * keywords.
 */
#ifndef SMK_GRAMMAR_GRAMMAR_H
#define SMK_GRAMMAR_GRAMMAR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"
#include "util/err.h"

#define GM_MAX_STACKS 8        /* anyOf branches followed at once */
#define GM_MAX_DEPTH 32        /* nesting of values (objects, arrays, strings) */
#define GM_MAX_WS 24           /* blanks after a newline between two JSON tokens */
#define GM_MAX_PROPS 64        /* properties of one object schema */
#define GM_MAX_FRAME 160       /* bytes of the text before or after the value */
#define GM_MAX_ALTS 64         /* grammar_set_frame_alts's alternatives */

struct grammar;
struct gvocab;
struct gmatch;

/* Where compiling a schema failed: the keyword (or the member) at fault and
 * the JSON pointer of the schema object holding it ("#/properties/a"). */
struct grammar_error {
	char keyword[64];
	char path[192];
	char msg[320];
};

/* Compile a JSON schema (any JSON object; the booleans true/false too).
 * strict is OpenAI's flag: with it, every object must say
 * additionalProperties: false and list all its properties in required, as
 * OpenAI's strict mode demands; without it, both are free.  Errors: -ENOTSUP
 * (a keyword we do not implement: e->keyword names it), -EINVAL (a malformed
 * schema: a wrong type, a dangling $ref, an empty enum), -E2BIG (over the
 * limits above), -ENOMEM.  *out owned by the caller (grammar_free). */
int grammar_compile_schema(struct grammar **out, json_t *schema, bool strict,
			   struct grammar_error *e);
/* The json_object mode: any JSON object. */
int grammar_compile_any_object(struct grammar **out, struct grammar_error *e);
/* Fixed text around the value: the output is pre, the value, post (tool
 * calls: "<tool_call>\n" {...} "\n</tool_call>").  No whitespace is
 * allowed between them beyond what pre and post hold.  Call it right
 * after compiling, before any matcher uses g.  -E2BIG over GM_MAX_FRAME
 * bytes each. */
int grammar_set_frame(struct grammar *g, const char *pre, size_t n_pre, const char *post,
		      size_t n_post);
/* NULL is fine; returns NULL. */
/* The same with one of n texts before the value (n <= GM_MAX_ALTS, each
 * at most GM_MAX_FRAME bytes, none a prefix of another): the schema's
 * root must be an anyOf of n schemas, and after pre[k] the value is the
 * anyOf's k-th schema (harmony's tool calls: the function's name is in the
 * text before its arguments).  -EINVAL when the root is no such anyOf,
 * -E2BIG over the limits, -ENOMEM. */
int grammar_set_frame_alts(struct grammar *g, const char *const *pre, int n, const char *post,
			   size_t n_post);
/* A grammar that waits: the output is free text until it ends with the
 * n bytes of text (harmony's tool_choice "auto": the model reasons, then
 * may open a call's header, "<|channel|>commentary to=functions."); only
 * then do pre (or the alternatives), the value and post follow, as
 * without a trigger.  While the matcher waits (gmatch_waiting) the caller
 * samples freely and gmatch_accept reads each token's bytes for the
 * trigger; the bytes of the token after the trigger's end are the frame's
 * first.  -EINVAL when n is 0, -E2BIG over GM_MAX_FRAME. */
int grammar_set_trigger(struct grammar *g, const char *text, size_t n);
struct grammar *grammar_free(struct grammar *g);
/* The fewest bytes of a value the grammar accepts. */
uint32_t grammar_min_len(const struct grammar *g);

/* Build the trie of t's token pieces.  t must outlive the result.  Tokens
 * with no bytes (control tokens) and pieces over 255 bytes are never
 * allowed inside the value; the end-of-generation tokens are allowed at its
 * end.  *out owned by the caller (gvocab_free). */
int gvocab_new(struct gvocab **out, const struct tokenizer *t, struct smk_err *err);
struct gvocab *gvocab_free(struct gvocab *v);
int32_t gvocab_n_vocab(const struct gvocab *v);
/* Its memory in bytes, and the trie's nodes (for logs and docs). */
size_t gvocab_bytes(const struct gvocab *v, uint32_t *n_nodes);

/* A sequence's matcher at the start of the value.  g and v must outlive it.
 * Allocates the mask cache (at most about cache_bytes of masks, at least 16
 * of them) and the walk's scratch.  *out owned by the caller (gmatch_free). */
int gmatch_new(struct gmatch **out, const struct grammar *g, const struct gvocab *v,
	       size_t cache_bytes, struct smk_err *err);
struct gmatch *gmatch_free(struct gmatch *m);
/* Back to the start of the value (the cache is kept). */
void gmatch_reset(struct gmatch *m);

/* The allowed tokens in the current state: bit (id & 31) of word id >> 5,
 * ceil(n_vocab / 32) words.  The pointer stays valid until the next
 * gmatch_accept / gmatch_reset. */
const uint32_t *gmatch_mask(struct gmatch *m);
/* As gmatch_mask, for a generation with tokens_left tokens to go (this
 * one included): where some allowed token would leave a value that the
 * remaining tokens cannot complete (even one byte per token), only tokens
 * that leave a short enough completion are allowed, so that a value still
 * ends, complete and valid, within max_tokens.  The same pointer rules. */
const uint32_t *gmatch_mask_budget(struct gmatch *m, int tokens_left);
/* For a grammar that is optional (tool_choice "auto"), at the start of
 * the output: the tokens the grammar allows (they begin the value, or its
 * pre text) and every token whose first byte could not begin it (free
 * text), and the tokens with no bytes; not the tokens that begin like
 * the value but leave it.  The caller accepts the sampled token
 * (gmatch_accept) and, where that fails, drops the grammar: the output is
 * free text.  Computed at each call (once per sequence); the same pointer
 * rules as gmatch_mask. */
const uint32_t *gmatch_mask_optional(struct gmatch *m);
/* How many tokens the last gmatch_mask / gmatch_mask_budget allowed. */
int gmatch_mask_count(const struct gmatch *m);

/* Advance by token id.  0, or -EINVAL when the token is not allowed (the
 * state is unchanged).  An end-of-generation token is allowed only where
 * the value may end (gmatch_can_end), and makes gmatch_done true.
 * While the matcher waits for its trigger every token is accepted, except
 * one whose bytes after the trigger's end leave the frame: -EINVAL, and
 * the state is then undefined (the caller drops the grammar). */
int gmatch_accept(struct gmatch *m, int32_t id);
/* The grammar has a trigger that the output has not reached yet: the
 * output is free text (no mask applies; can_end and done are false). */
bool gmatch_waiting(const struct gmatch *m);
/* Advance by raw bytes (tests, and text forced by a caller).  0 or -EINVAL
 * (the state is unchanged). */
int gmatch_feed(struct gmatch *m, const char *s, size_t len);
/* The value is complete: it may end here. */
bool gmatch_can_end(const struct gmatch *m);
/* Nothing can follow: the value is complete and no byte may extend it (or
 * an end token was accepted).  The caller ends the generation. */
bool gmatch_done(const struct gmatch *m);

/* Counters for benchmarks and tests: masks computed (cache misses) and
 * served from the cache. */
void gmatch_stats(const struct gmatch *m, uint64_t *computed, uint64_t *cached);

#endif
