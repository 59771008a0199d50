/* harmony.h - split the output of a gpt-oss model (the harmony chat format)
 * into its channels, as it streams.
 *
 * What the model writes after the prompt's closing "<|start|>assistant"
 * [openai/harmony docs/format.md; llama.cpp common/parsers/gpt-oss.cpp]:
 *
 *   <|channel|>analysis<|message|>{reasoning}<|end|>
 *   <|start|>assistant<|channel|>final<|message|>{answer}<|return|>
 *
 * i.e. messages, each a header (role, "<|channel|>" and a channel name, an
 * optional recipient " to=NAME", an optional "<|constrain|>TYPE") then
 * "<|message|>", the body, and "<|end|>".  Generation ends on <|return|> (the
 * answer is done) or <|call|> (a tool call); both are end-of-generation
 * tokens and never reach this parser (tokenizer.c drops <|end|> from the
 * end-of-generation set when <|return|> and <|call|> exist, as llama.cpp's
 * llama-vocab.cpp does, so the model can go on after its analysis).
 *
 * The parser reads the released TEXT of the generation: llama.cpp's loader
 * (and ours, tokenizer.c) types <|channel|>, <|message|>, <|start|>,
 * <|constrain|> and, once it is no end of generation, <|end|> as
 * user-defined tokens whose piece is their own text, so the markers are in
 * the text exactly where the tokens were (harmony_push_step adds them where
 * a tokenizer keeps them CONTROL and renders nothing).  (A model that spells "<|end|>"
 * out of ordinary tokens is read as the marker too; llama-server's parser,
 * which also works on text, does the same.)
 *
 * Rules (llama.cpp's gpt-oss parser, common/parsers/gpt-oss.cpp, where it
 * has one):
 *   - header text never reaches the caller: the markers, the role, the
 *     channel name, the recipient, the constraint;
 *   - body of channel "analysis"  -> HARMONY_REASONING (reasoning_content);
 *     "final"                     -> HARMONY_CONTENT;
 *     "commentary" without a recipient (a preamble) -> HARMONY_CONTENT
 *     (llama.cpp's "preamble" rule);
 *     any header with a recipient (" to=functions.x": a tool call, in the
 *     channel part or the role part of the header) -> HARMONY_CALL, with
 *     the recipient in p->recipient and the message's number in p->n_msg
 *     (the caller drops it where it offered no tools, llama.cpp's
 *     "unsolicited" rule);
 *     no channel at all, or an unknown / over-long channel name
 *     -> HARMONY_CONTENT (our choice: a model that strays from the format
 *     still shows its answer rather than nothing);
 *   - when a header has two channels ("<|channel|>commentary<|channel|>
 *     analysis", a slip llama.cpp's "stray_commentary" rule accepts) the last
 *     one counts;
 *   - a body ends at <|end|> (also <|return|>, <|call|> should they appear
 *     as text), or where <|start|> or <|channel|> opens the next header
 *     without one; <|message|> and <|constrain|> inside a body are dropped;
 *   - text outside any body (after <|end|>, before <|message|>) is header:
 *     dropped;
 *   - a marker may arrive split over several pushes: its possible beginning
 *     (at most 12 bytes, all ASCII) is held back until it is decided; at the
 *     end of the generation (harmony_finish) a held-back fragment of a body
 *     is text after all and is emitted; an unfinished header is dropped.
 *
 * Emitted spans are cut only before '<' or after a marker, so whole UTF-8
 * characters in give whole characters out.  The parser state is this fixed
 * struct (embedded in the request; nothing is allocated, ever).
 */
#ifndef SMK_ENGINE_HARMONY_H
#define SMK_ENGINE_HARMONY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

enum harmony_channel {
	HARMONY_DROP,          /* header text, tool calls */
	HARMONY_REASONING,     /* the analysis channel */
	HARMONY_CONTENT,       /* final, commentary preambles, unknown channels */
	HARMONY_CALL,          /* the body of a message with a recipient */
};

#define HARMONY_HOLD 16        /* > the longest marker, "<|constrain|>" (13) */
#define HARMONY_CHANNEL_MAX 16 /* > the longest channel name, "commentary" */
#define HARMONY_RECIPIENT_MAX 80 /* "functions." and a 64-byte name, with room */

struct harmony_parser {
	bool in_body;
	enum harmony_channel ch;           /* of the body */
	/* the header being read */
	bool in_channel;                   /* reading a channel name */
	bool has_channel, channel_long;
	char channel[HARMONY_CHANNEL_MAX];
	int n_channel;
	int to_match;                      /* bytes of " to=" matched */
	bool has_recipient, in_recipient, recipient_long;
	char recipient[HARMONY_RECIPIENT_MAX];  /* after " to=", up to ' ' or a marker */
	int n_recipient;
	unsigned n_msg;                    /* bodies begun so far (which message a call is) */
	/* a possible marker's beginning */
	char hold[HARMONY_HOLD];
	int n_hold;
};

/* Text of channel ch (never HARMONY_DROP), len >= 1. */
typedef void (*harmony_emit_fn)(void *ctx, enum harmony_channel ch, const char *s, size_t len);

/* The state right after the prompt's "<|start|>assistant": a header. */
void harmony_init(struct harmony_parser *p);
/* Feed the next len bytes of generated text; emit runs synchronously. */
void harmony_push(struct harmony_parser *p, const char *s, size_t len, harmony_emit_fn emit,
		  void *ctx);
/* One step of the worker (worker.h's on_text): its released text, then,
 * if the step's token id is a header marker that renders as no text - a
 * CONTROL token, as a tokenizer with Hugging Face semantics keeps
 * gpt-oss's added special tokens, where llama.cpp's fix-ups make them
 * user-defined - that marker's text.  id < 0: text only.  (With stop
 * strings, text the worker still holds back would come after the marker;
 * only then can this order be wrong.) */
void harmony_push_step(struct harmony_parser *p, const struct tokenizer *t, int32_t id,
		       const char *s, size_t len, harmony_emit_fn emit, void *ctx);
/* The generation ended: emit a held-back body fragment; p is then reset. */
void harmony_finish(struct harmony_parser *p, harmony_emit_fn emit, void *ctx);

#endif
