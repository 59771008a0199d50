/* toolcall.h - tool calls (OpenAI's `tools`) in the chat formats: how a
 * format describes the tools in the prompt, how it writes a call, the JSON
 * schema that constrains a generated call, and reading a call back out of
 * the generated text.
 *
 * What a call looks like in each format (docs/tool-calls.md has the whole
 * prompts and the sources):
 *   chatml (Qwen2.5 / Hermes)  <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
 *   gemma                      the same text (Gemma 3's template has no tools;
 *                              our choice, see chat.h)
 *   llama3 (Llama 3.1)         {"name": "f", "parameters": {...}}
 * The generated call is the whole output: it starts at the first byte (no
 * text before it, no whitespace) and the generation ends with it, so a
 * response carries at most one call.
 *   harmony (gpt-oss)          <|channel|>commentary to=functions.f <|constrain|>json<|message|>{...}
 *                              then <|call|> (an end of generation); the
 *                              tools are declared TypeScript-like in the
 *                              developer message (toolcall_harmony_tools_text).
 * plain has no tool calls (toolcall_syntax returns NULL).
 *
 * Everything here works on text and jansson values; nothing is kept
 * between calls. */
#ifndef SMK_ENGINE_TOOLCALL_H
#define SMK_ENGINE_TOOLCALL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine/chat.h"

#define TOOLCALL_NAME_MAX 64   /* OpenAI's limit on a function name */

struct toolcall_syntax {
	const char *pre;           /* the text before the call's JSON object ("" none) */
	const char *post;          /* the text after it */
	const char *open;          /* pre without its whitespace: what the reader matches */
	const char *close;         /* post without its whitespace */
	const char *args_key;      /* "arguments" or "parameters" */
	/* harmony: the call is a message of its own (its header names the
	 * function, the body is the arguments), read by the channel parser
	 * (harmony.h), not by toolcall_scan; pre is the header up to the name,
	 * TOOLCALL_HARMONY_MID follows the name. */
	bool harmony;
};

#define TOOLCALL_HARMONY_MID " <|constrain|>json<|message|>"

/* NULL where the format has no tool calls (plain). */
const struct toolcall_syntax *toolcall_syntax(enum chat_format f);

/* A function name as OpenAI allows it: 1..64 of [A-Za-z0-9_-]. */
bool toolcall_name_ok(const char *s, size_t len);

/* The tools block of the prompt (malloc'd, NUL-terminated; NULL: out of
 * memory or a format without tools): tools is the request's `tools` array
 * as given ({"type": "function", "function": {...}} each), dumped as the
 * templates' tojson does (", " and ": "; indent 4 for llama3). */
char *toolcall_tools_text(enum chat_format f, json_t *tools);

/* A call as an assistant turn of the history writes it (malloc'd).  args
 * is the arguments' JSON text as the template's tojson writes it. */
char *toolcall_call_text(enum chat_format f, const char *name, const char *args);
/* The text of an assistant turn with tool calls, between the format's turn
 * markers (malloc'd; NULL: out of memory):
 *   chatml  ["\n" content] then "\n" call, for each call
 *   gemma   [content (trimmed) "\n"] then the calls joined by "\n"
 *   llama3  the one call (content is not written, as in the template) */
char *toolcall_assistant_text(enum chat_format f, const struct chat_msg *m);
/* The text of a turn of n consecutive tool results (role "tool"):
 *   chatml  "\n<tool_response>\n" content "\n</tool_response>", for each
 *   gemma   "<tool_response>\n" content (trimmed) "\n</tool_response>",
 *           joined by "\n"
 *   llama3  (n = 1) the content as a JSON string: the template's
 *           `message.content | tojson` (a string is iterable in jinja) */
char *toolcall_results_text(enum chat_format f, const struct chat_msg *m, int n);

/* harmony: the tools as the gpt-oss template's render_tool_namespace
 * writes them into the developer message: "# Tools\n\n## functions\n\n
 * namespace functions {\n\n" then per function "// description\n" and
 * "type NAME = (_: {\n" with a line per property ("// description\n",
 * "name?: TYPE, // default: D,\n"; `?` when not required; TYPE the
 * template's TypeScript rendering: string, number, boolean, enums as
 * "a" | "b", T[], nested objects, any) then "}) => any;\n\n" (or
 * "() => any;\n\n" without properties), and "} // namespace functions".
 * Malloc'd; NULL: out of memory. */
char *toolcall_harmony_tools_text(json_t *tools);
/* A string as jinja's tojson writes it (malloc'd; NULL: out of memory). */
char *toolcall_json_string(const char *s, size_t len);

/* The JSON schema of one call (the object after pre) of one of the n
 * functions fns[i] ({"name", "parameters"?, ...}): {"name": the name,
 * args_key: the parameters' schema}, an anyOf when n > 1.  Local $refs of
 * each parameters schema ("#/$defs/x") are rebased to where the schema
 * now sits.  New reference; NULL: out of memory. */
json_t *toolcall_schema(const struct toolcall_syntax *sx, json_t *const *fns, int n);

/* harmony: the schema of the arguments of one of the n functions: the
 * parameters of fns[0] when n is 1, else an anyOf of each one's (local
 * $refs rebased), the k-th branch fns[k]'s (grammar_set_frame_alts puts
 * each function's header before its branch).  New reference; NULL: out of
 * memory. */
json_t *toolcall_harmony_schema(json_t *const *fns, int n);

/* Reading generated text.  The head of a call is open, '{', "name", the
 * name, "," and args_key up to the arguments' first byte (whitespace where
 * JSON allows it). */
enum toolcall_scan {
	TOOLCALL_TEXT,             /* not a call: the text is content */
	TOOLCALL_MAYBE,            /* a beginning of a head: wait for more */
	TOOLCALL_HEAD,             /* a head: h is filled */
};
struct toolcall_head {
	size_t name_off, name_len; /* the name, in the text */
	size_t args_off;           /* the arguments' first byte */
};
enum toolcall_scan toolcall_scan(const struct toolcall_syntax *sx, const char *s, size_t n,
				 struct toolcall_head *h);
/* In a finished text with a head: where the arguments end (the object's
 * '}' and close, with whitespace, follow).  0, or -1 when the end is not
 * the call's (a call cut off by max_tokens). */
int toolcall_args_end(const struct toolcall_syntax *sx, const char *s, size_t n,
		      const struct toolcall_head *h, size_t *end);

#endif
