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
 *   harmony gpt-oss; below
 *   plain   {role}: {content}\n ... assistant:   (models without a chat format)
 * BOS is prepended when the tokenizer says so.  The template's own marker text
 * is tokenised with special tokens recognised; message content is tokenised
 * with special tokens NOT recognised, so a user cannot inject
 * "<end_of_turn>" and forge another turn.
 *
 * harmony (gpt-oss; detected by a template holding "<|start|>" and
 * "<|channel|>", llama.cpp's llm_chat_detect_template rule, or by a
 * vocabulary with <|start|>, <|message|>, <|channel|>, <|end|> and
 * <|return|>) renders what the official template
 * (llama.cpp models/templates/openai-gpt-oss-120b.jinja; openai/harmony
 * docs/format.md) renders for a conversation without tools:
 *   <|start|>system<|message|>You are ChatGPT, a large language model trained
 *     by OpenAI.\nKnowledge cutoff: 2024-06\n\nReasoning: medium\n\n# Valid
 *     channels: analysis, commentary, final. Channel must be included for
 *     every message.<|end|>
 *   <|start|>developer<|message|># Instructions\n\n{content}\n\n<|end|>
 *                     for a first message of role system or developer
 *                     (nothing if its content is empty)
 *   <|start|>user<|message|>{content}<|end|>
 *   <|start|>assistant<|channel|>final<|message|>{content}<|end|>
 *   ...
 *   <|start|>assistant
 * Where it differs from the template:
 *   - no "Current date: YYYY-MM-DD" line (the template's strftime_now): a
 *     prompt must not change with the clock (the line goes, the blank line
 *     after it stays: "...2024-06\n\nReasoning...");
 *   - tools (chat_encode_tools) as the template writes them
 *     (docs/tool-calls.md): the "Calls to these tools..." line, the
 *     TypeScript declarations after the instructions in the developer
 *     message, calls and results in the history; no builtin tools or
 *     response formats;
 *   - a system or developer message after the first becomes a developer
 *     message of its own, in place (the template drops it silently);
 *   - model identity and reasoning effort are the template's defaults (no
 *     request field sets them yet).
 * As in the template, assistant history is the final channel only (no
 * analysis: the reasoning of earlier turns is dropped, harmony's rule) and
 * ends with <|end|>, and content is not trimmed.  BOS is added only if the
 * tokenizer asks (gpt-oss does not).
 *
 * Tokenisation for harmony follows llama.cpp's: special tokens are cut out,
 * and the text between two of them (e.g. "# Instructions\n\n{content}\n\n")
 * is tokenised as ONE piece, so BPE merges across the template's text and
 * the content as they do there.  gpt-oss's markers <|start|>, <|message|>,
 * <|channel|>, <|constrain|> and <|end|> are USER_DEFINED tokens after the
 * loader's fix-ups (tokenizer.c, as llama-vocab.cpp), which the tokenizer
 * matches even with special tokens off; so content is additionally cut
 * after the "<|" of every "<|name|>" that is a token of the vocabulary and
 * the parts tokenised separately: the marker's text becomes ordinary tokens
 * and cannot close a message.  For o200k's pre-tokenizer ("gpt-4o") that
 * cut is a pre-token boundary already ("<|" ends a punctuation run before
 * the letters), so ordinary text tokenises as it would without the cut.
 */
#ifndef SMK_ENGINE_CHAT_H
#define SMK_ENGINE_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/err.h"

enum chat_format { CHAT_GEMMA, CHAT_CHATML, CHAT_LLAMA3, CHAT_PLAIN, CHAT_HARMONY };

/* A tool call of an assistant message in the history: the function's
 * name and its arguments as JSON text, written as the templates' tojson
 * writes it (", " and ": "). */
struct chat_call {
	const char *name;
	const char *args;
};

struct chat_msg {
	const char *role;      /* system, developer, user, assistant, tool */
	const char *content;
	size_t len;
	const struct chat_call *calls;   /* an assistant's tool calls (toolcall.h) */
	int n_calls;
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
/* The same with tools (OpenAI's `tools` array, NULL or empty for none),
 * tool results (role "tool") and assistant tool calls in the history, as
 * toolcall.h and docs/tool-calls.md describe per format:
 *   chatml  Qwen2.5's template: the tools block ends the system message
 *           (which is only the block when there is none; Qwen's default
 *           "You are Qwen..." identity is left out), calls in <tool_call>,
 *           consecutive results in one user turn of <tool_response>s;
 *   llama3  Llama 3.1's template with tools_in_user_message (its default)
 *           and its default date: a system turn "Environment: ipython\n
 *           Cutting Knowledge Date: December 2023\nToday Date: 26 Jul
 *           2024\n\n{system}", the tools before the first user message
 *           (which must come first), one call per assistant message,
 *           results in ipython turns;
 *   gemma   Gemma 3's template has no tools: the Qwen2.5 tools block opens
 *           the first user turn (after the system text, as Gemma places
 *           it), calls and results in the same tags, results in user turns.
 *   harmony the gpt-oss template's (chat.h above, docs/tool-calls.md).
 * -ENOTSUP for tools in plain, -EINVAL for a history the format
 * cannot write (err says which message). */
int chat_encode_tools(enum chat_format f, const struct tokenizer *t, const struct chat_msg *msgs,
		      int n_msgs, json_t *tools, int max_tokens, int32_t **out, int *n_out,
		      struct smk_err *err);

#endif
