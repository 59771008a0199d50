/* chat.h - turn a list of chat messages into prompt tokens with the model's
 * own chat format.
 *
 * The GGUF file carries a Jinja template (tokenizer.chat_template); rather
 * than run Jinja we recognise the family of the template by its marker tokens
 * and render that family's format by hand:
 *   gemma   <start_of_turn>user\n{content}<end_of_turn>\n ... <start_of_turn>model\n
 *           (no system role: the system text opens the first user turn)
 *   chatml  <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
 *   llama3  <|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|> ...
 *           <|start_header_id|>assistant<|end_header_id|>\n\n
 *   plain   {role}: {content}\n ... assistant:   (models without a chat format)
 * BOS is prepended when the tokenizer says so.  The template's own marker text
 * is tokenised with special tokens recognised; message content is tokenised
 * with special tokens NOT recognised, so a user cannot inject
 * "<end_of_turn>" and forge another turn.
 */
#ifndef SMK_ENGINE_CHAT_H
#define SMK_ENGINE_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/err.h"

enum chat_format { CHAT_GEMMA, CHAT_CHATML, CHAT_LLAMA3, CHAT_PLAIN };

struct chat_msg {
	const char *role;      /* system, developer, user, assistant */
	const char *content;
	size_t len;
};

/* From tokenizer.chat_template if present, else from the vocabulary's
 * marker tokens, else plain. */
enum chat_format chat_detect(const struct gguf *g, const struct tokenizer *t);
const char *chat_format_name(enum chat_format f);

/* Tokens of the conversation followed by the opening of the assistant's turn.
 * *out is malloc'd (caller frees) and holds *n_out ids; at most max_tokens
 * (-E2BIG past that). */
int chat_encode(enum chat_format f, const struct tokenizer *t, const struct chat_msg *msgs,
		int n_msgs, int max_tokens, int32_t **out, int *n_out, struct smk_err *err);

#endif
