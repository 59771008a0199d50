/* api.h - the OpenAI-compatible endpoints: JSON validation of requests and
 * the JSON of responses, errors and stream chunks (proto/openapi.yaml).
 * Internal to http/. */
#ifndef SMK_HTTP_API_H
#define SMK_HTTP_API_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "engine/harmony.h"
#include "engine/worker.h"
#include "http/server.h"

struct tools_req;

/* An error answer: status, OpenAI type, the offending field, a code. */
struct api_error {
	int status;
	const char *type;          /* invalid_request_error, ... */
	char param[96];            /* "" -> null */
	const char *code;          /* NULL -> null */
	char msg[600];
	int retry_after;           /* seconds; 0: no header */
};

int api_fail(struct api_error *e, int status, const char *type, const char *param,
	     const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* {"error":{...}} as a malloc'd string. */
char *api_error_body(const struct api_error *e);

/* One HTTP request, from its first byte to the end of its response.  Owned
 * jointly by libmicrohttpd (until the completion callback) and the worker
 * (from a successful worker_submit until on_done): freed when both let go. */
struct hreq {
	struct server *srv;
	struct MHD_Connection *conn;   /* NULL once libmicrohttpd is done with it */
	int fd;                        /* conn's socket, valid while conn is set; -1 unknown */
	struct conn_slot *slot;        /* conn's entry in the server's list; NULL if none */
	pthread_mutex_t lock;
	int refs;
	double t_arrival;
	char method[8];
	char path[64];
	/* Body, bounded by limits.max_body. */
	char *body;
	size_t n_body, cap_body;
	bool body_too_large;           /* over limits.max_body: the rest is discarded, then 413 */
	bool body_no_memory;           /* no memory to hold it: the rest is discarded, then 500 */
	bool close_after;              /* the response closes the connection (a body left unread, bad framing) */
	int route;                     /* server.c's enum route_id, set once the head passed its checks */
	bool answered;                 /* a response was queued */
	int status;                    /* the status queued */
	/* Generation (completions and chat). */
	bool is_gen, chat, stream, include_usage, chat_logprobs;
	int n_logprobs;                /* -1 none */
	bool in_worker, done, suspended;
	bool client_gone;              /* a non-streamed request's client closed its socket */
	int n_sampled;                 /* tokens the worker reported so far (/stats in_flight) */
	struct worker_job job;
	int32_t *prompt;
	int n_prompt;
	char *stops[WORKER_MAX_STOP];
	struct worker_result res;
	char id[48];
	time_t created;
	/* Output released by the worker: all of it, or for a chat in the
	 * harmony format (engine/harmony.h) the answer (final channel) in text
	 * and the reasoning (analysis channel) in reason. */
	char *text;
	size_t n_text, cap_text, sent_text;
	bool harmony;
	struct harmony_parser hp;
	char *reason;                  /* harmony only; sized as text at admission */
	size_t n_reason, cap_reason, sent_reason;
	bool out_of_memory;
	struct tools_req *tools;       /* tools.h; NULL without tools */
	struct worker_token *toks;     /* with logprobs: one per token */
	size_t *tok_end;               /* text end offset after each token */
	int n_tok, cap_tok, sent_tok;
	/* Stream: the event being sent. */
	char *ev;                      /* malloc'd, or static if ev_static */
	size_t n_ev, off_ev;
	bool ev_static;
	int sse;                       /* 0 start, 1 streaming, 2 final sent, 3 [DONE] sent */
};

/* Validate a completions/chat body and fill r (prompt, job fields, flags).
 * On failure returns -1 with e filled. */
int api_parse_generation(struct server *s, struct hreq *r, json_t *root, struct api_error *e);

/* The non-stream response body, and the stream's next event text ("data:
 * {...}\n\n" without the [DONE]); malloc'd. */
char *api_generation_body(struct hreq *r);
/* Chunk with text [from, to), reasoning [rfrom, rto) (delta.content and
 * delta.reasoning_content of a chat; each only if not empty) and tokens
 * [tfrom, tto); finish NULL for none; usage adds the usage object. */
char *api_stream_chunk(struct hreq *r, size_t from, size_t to, size_t rfrom, size_t rto, int tfrom,
		       int tto, const char *finish, bool usage, bool role);

/* Newly released output and the step's token id (-1 none) (worker
 * thread, r->lock held): appended to r->text, or split by the harmony
 * parser into r->text and r->reason (harmony_push_step).  Buffers grow by
 * doubling.  0, or -ENOMEM (what did not fit is lost; the caller ends the
 * job). */
int api_take_text(struct hreq *r, const char *s, size_t len, int32_t id);
/* The generation ended (r->lock held): the harmony parser's held-back
 * bytes are emitted.  0 or -ENOMEM. */
int api_end_text(struct hreq *r);

/* Simple endpoints: fill *body (malloc'd JSON) and return the status, or
 * return -1 with e filled. */
int api_tokenize(struct server *s, json_t *root, char **body, struct api_error *e);
int api_detokenize(struct server *s, json_t *root, char **body, struct api_error *e);
char *api_models(struct server *s);

/* How many of the tokens received so far line up with the text released
 * so far (r->lock held): a token whose bytes all lie at or past the end of
 * r->text (held back as a possible stop string, or inside the stop string
 * that ended the generation) is not reported - logprobs describe the text
 * returned, never the stop string.  Tokens without bytes (an end token)
 * are reported where they come.  For the harmony format, whose text is
 * one channel of the output, or without stop strings: all of them. */
int api_tokens_in_text(const struct hreq *r);

/* OpenAI's finish_reason for a worker result. */
const char *api_finish_reason(enum worker_finish f);
/* The request's finish_reason once done: "tool_calls" for a call
 * (tools.h), else api_finish_reason's. */
const char *api_finish(struct hreq *r);
/* A stream event of a chat chunk with this delta (taken); malloc'd. */
char *api_delta_event(struct hreq *r, json_t *delta);
/* A JSON string of bytes that need not be valid UTF-8 (repaired). */
json_t *api_json_text(const char *s, size_t len);

#endif
