/* tools.h - OpenAI's tool calls over the API: the request's `tools`,
 * `tool_choice` and `parallel_tool_calls`, the tool parts of `messages`,
 * the grammar that constrains a call, and the call read back out of the
 * output for the response and the stream (docs/tool-calls.md).
 *
 * The model's call is the format's call text (engine/toolcall.h) with the
 * arguments constrained to the function's `parameters` schema by the
 * grammar of structured outputs:
 *   "required"        the whole output is one call of one of the tools;
 *   {"type": "function", "function": {"name": N}}   one call of N;
 *   "auto"            the first token decides: one that begins the call's
 *                     text (e.g. "<tool_call>", or "{" for Llama 3) commits
 *                     to a constrained call, any other to free text
 *                     (grammar_optional of the worker job);
 *   "none"            free text, never read as a call (the tools are still
 *                     described in the prompt).
 * A call begins at the output's first byte and ends the generation, so a
 * response has at most one call (parallel_tool_calls is accepted and has
 * nothing to parallelise).
 * harmony (gpt-oss) differs: "required" and a named function go straight
 * to the call message (its header per allowed function the grammar's
 * frame, grammar_set_frame_alts), "auto" has the same grammar waiting for
 * the call's header ("<|channel|>commentary to=functions.",
 * grammar_set_trigger) with the rest of the header as its frame, and the
 * call is read by the channel parser (tools_harmony_call) rather than from the
 * text.  Internal to http/. */
#ifndef SMK_HTTP_TOOLS_H
#define SMK_HTTP_TOOLS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine/chat.h"
#include "engine/toolcall.h"

struct hreq;
struct server;
struct api_error;

#define TOOLS_MAX 64           /* tools per request: the grammar's anyOf limit */

enum tools_choice { TOOLS_NONE, TOOLS_AUTO, TOOLS_REQUIRED, TOOLS_NAMED };
enum tools_state { TOOLS_UNDECIDED, TOOLS_TEXT, TOOLS_CALL };

struct tools_req {
	json_t *tools;                 /* the request's `tools` (a reference); NULL: none */
	enum tools_choice choice;
	int named;                     /* TOOLS_NAMED: the index in tools */
	const struct toolcall_syntax *sx;   /* set when a call may be generated */
	/* the output, read as it arrives (r->lock held) */
	enum tools_state state;
	struct toolcall_head head;
	bool head_sent;
	size_t args_sent;              /* stream: the arguments' bytes sent end here */
	char id[32];                   /* "call_" and 24 letters or digits */
	char name[TOOLCALL_NAME_MAX + 1];   /* the called function (TOOLS_CALL) */
	unsigned call_msg;             /* harmony: the call's message (harmony_parser.n_msg) */
};

/* `tools`, `tool_choice`, `parallel_tool_calls` of a chat request into
 * r->tools (NULL when none of them is given), before the messages are
 * encoded.  The fields that cannot go with a call are refused here
 * (response_format, logprobs, stop: 400 naming them), and so is a
 * function's parameters schema the grammar does not take.  -1 with e
 * filled. */
int tools_parse(struct server *s, struct hreq *r, json_t *o, struct api_error *e);
/* The tool parts of messages[i]: an assistant's `tool_calls` (into m->calls,
 * malloc'd: tools_message_free) and a tool message's `tool_call_id`.  Says
 * whether the message may have no content (an assistant with calls).  -1
 * with e filled. */
int tools_message(json_t *msg, size_t i, struct chat_msg *m, bool *content_optional,
		  struct api_error *e);
void tools_message_free(struct chat_msg *m);
/* The grammar of a call (choice not none) into r->job.grammar, which
 * worker_submit takes (each function's parameters were compiled alone by
 * tools_parse, whose errors name tools[i].function.parameters).  Called
 * last, as parse_response_format. */
int tools_grammar(struct hreq *r, struct api_error *e);
/* NULL is fine. */
void tools_free(struct tools_req *t);

/* A call may come out of this request (tools and choice not none). */
bool tools_active(const struct hreq *r);
/* Read r->text so far (r->lock held): decides the state once the text
 * shows it, at the latest when the generation is done. */
void tools_update(struct hreq *r);
/* harmony: the channel parser has a body of a message to recipient (a
 * call, harmony.h) of its n_msg-th message.  A first call to
 * "functions.F", F one of the call's choices, makes the state TOOLS_CALL
 * (its arguments start at the end of r->text); says whether the body goes
 * into r->text (the call's own message) or is dropped (a call to anything
 * else, a second call). */
bool tools_harmony_call(struct hreq *r, const char *recipient, size_t n, unsigned msg);
/* harmony: content or reasoning may still be taken (no call yet). */
bool tools_harmony_content(const struct hreq *r);
/* The content that may be sent or returned: all of r->text, or none of
 * it (undecided, or a call); harmony: the text before the call. */
size_t tools_content_end(const struct hreq *r);
/* The call's arguments as text: [*from, *to) of r->text (the whole rest
 * of the text if the call was cut off). */
void tools_args_span(const struct hreq *r, size_t *from, size_t *to);
/* The call as a message's tool_calls array (new reference). */
json_t *tools_calls_json(const struct hreq *r);
/* The stream's next tool_calls delta (the head with id and name, then
 * argument fragments, the last ones once the generation is done), or
 * NULL when there is none to send now. */
json_t *tools_stream_delta(struct hreq *r);

#endif
