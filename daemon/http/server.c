/* server.c - libmicrohttpd glue: routing, authentication, bodies, the
 * hand-off to the worker, server-sent events; listening and stopping (the
 * daemon's lifecycle around them is serve/serve.c). */
#include "http/server.h"

#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "grammar/grammar.h"
#include "http/tools.h"
#include "http/api.h"
#include "formats/json_err.h"
#include "http/front.h"
#include "http/guard.h"
#include "http/web.h"
#include "util/mapfile.h"
#include "util/log.h"
#include "smk_config.h"

const int server_codes[HTTP_CODES] = { 200, 400, 401, 403, 404, 405, 413, 414, 415, 429, 500, 501, 503, 504 };

void server_count_status(struct server *s, int status)
{
	int i = 0;
	while (i < HTTP_CODES && server_codes[i] != status)
		i++;
	atomic_fetch_add(&s->responses[i], 1);
}

/* ---- connections ---- */

/* One open connection, from libmicrohttpd's STARTED notification (the
 * accept) to CLOSED, which comes before it closes the socket: while a slot
 * is in s->conns, under s->conns_lock, its fd is still that connection's. */
struct conn_slot {
	struct dlist_node link; /* in s->conns */
	int fd;
	double t_phase;     /* smk_now() at the accept, or at the end of the previous request */
	bool in_headers;    /* no request has reached the access handler since t_phase */
	bool cut;           /* shut down by the sweep */
	struct hreq *gen;   /* a generation in the worker's hands, or NULL */
	/* Owned by the connection's HTTP thread (not read by the sweep). */
	int over;           /* OVER_*: refused with 503 at its first request */
	/* Under conns_lock. */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	int served;         /* requests answered on this connection */
	bool uploading;     /* the current request's body is being received */
	double t_hup;       /* when the sweep first saw the peer's end (POLLRDHUP) while it was idle or uploading; 0: not seen */
};

enum { OVER_NONE, OVER_IP, OVER_TOTAL };

static int conn_fd(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	return ci ? ci->connect_fd : -1;
}

/* Has the client closed its end?  Read-side EOF (or a reset) on a
 * connection that has sent its whole request means it left: HTTP clients do
 * not half-close while they wait for an answer.  Pipelined bytes are not an
 * end.  Never blocks. */
static bool peer_closed(int fd)
{
	char b;
	ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ---- requests ---- */

static struct hreq *hreq_new(struct server *s, struct MHD_Connection *c, const char *method,
			     const char *url)
{
	struct hreq *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->srv = s;
	r->conn = c;
	r->fd = conn_fd(c);
	r->refs = 1;
	r->t_arrival = smk_now();
	r->n_logprobs = -1;
	r->route = -1;
	snprintf(r->method, sizeof(r->method), "%s", method);
	snprintf(r->path, sizeof(r->path), "%s", url);
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

static void hreq_unref(struct hreq *r)
{
	pthread_mutex_lock(&r->lock);
	int left = --r->refs;
	pthread_mutex_unlock(&r->lock);
	if (left)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->body);
	free(r->prompt);
	for (int i = 0; i < WORKER_MAX_STOP; i++)
		free(r->stops[i]);
	free(r->text);
	free(r->reason);
	free(r->toks);
	free(r->tok_end);
	if (!r->ev_static)
		free(r->ev);
	tools_free(r->tools);
	free(r);
}

/* The answer when the one meant could not be made: static, so that it
 * needs no memory of ours. */
static const char oom_body[] =
	"{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";

static struct MHD_Response *oom_response(void)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(sizeof(oom_body) - 1, (void *)oom_body,
								    MHD_RESPMEM_PERSISTENT);
	if (resp)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return resp;
}

/* Out of memory for a request's context (hreq_new): 500 at once, and the
 * connection closes (its body, if any, is not read). */
static enum MHD_Result reply_no_request(struct server *s, struct MHD_Connection *c)
{
	log_warn("a request: 500 out of memory for its context");
	struct MHD_Response *resp = oom_response();
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ret = MHD_queue_response(c, 500, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES)
		server_count_status(s, 500);
	return ret;
}

/* Queue a response with a malloc'd body (taken); a NULL body is an answer
 * that could not be made (out of memory): 500 with oom_body instead.  The
 * body is freed through libmicrohttpd's free callback, not its own free(),
 * so that the allocation and the free pair up in our code (what the fault
 * injection tests count, tests/unit/faults). */
static enum MHD_Result reply(struct hreq *r, int status, const char *ctype, char *body,
			     int retry_after, const char *allow)
{
	if (!body) {
		status = 500;
		retry_after = 0;
	}
	struct MHD_Response *resp = body ?
		MHD_create_response_from_buffer_with_free_callback(strlen(body), body, free) :
		oom_response();
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	if (body)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (retry_after > 0) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%d", retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	if (status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (r->close_after)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (!strcmp(ctype, WEB_CONTENT_TYPE))
		web_headers(resp);
	enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	r->answered = true;
	r->status = status;
	/* Count what the client will see: a response libmicrohttpd refused
	 * to queue closes the connection without a status. */
	if (ret == MHD_YES)
		server_count_status(r->srv, status);
	return ret;
}

static enum MHD_Result reply_json(struct hreq *r, int status, char *body)
{
	return reply(r, status, "application/json", body, 0, NULL);
}

static enum MHD_Result reply_error(struct hreq *r, const struct api_error *e, const char *allow)
{
	char *body = api_error_body(e);
	if (e->status == 500)
		log_warn("%s %s: %d %s", r->method, r->path, e->status, e->msg);
	else if (e->status >= 500 && e->status != 501)
		log_client(LOG_WARN, "%s %s: %d %s", r->method, r->path, e->status, e->msg);
	else
		log_debug("%s %s: %d %s", r->method, r->path, e->status, e->msg);
	return reply(r, e->status, "application/json", body, e->retry_after, allow);
}

/* ---- authentication ---- */

/* Compare the presented key with every configured key over the full fixed
 * buffer length, so that the time taken does not depend on where (or
 * whether) they differ, nor on which key matched. */
static bool key_ok(const struct config *c, const char *hdr)
{
	char given[CONFIG_API_KEY_MAX];
	memset(given, 0, sizeof(given));
	unsigned bad = 0;
	if (!hdr || strncasecmp(hdr, "Bearer ", 7))
		return false;
	const char *k = hdr + 7;
	size_t len = strlen(k);
	if (len >= CONFIG_API_KEY_MAX)
		bad = 1;
	else
		memcpy(given, k, len);
	unsigned any = 0;
	for (int i = 0; i < c->server.n_api_keys; i++) {
		unsigned diff = 0;
		for (size_t j = 0; j < CONFIG_API_KEY_MAX; j++)
			diff |= (unsigned char)given[j] ^ (unsigned char)c->server.api_keys[i][j];
		any |= diff == 0;
	}
	return any && !bad;
}

/* ---- routes ---- */

enum route_id { R_COMPLETIONS, R_CHAT, R_MODELS, R_TOKENIZE, R_DETOKENIZE, R_HEALTH, R_STATS, R_METRICS,
		R_WEB };

static const struct route {
	const char *path, *method;
	enum route_id id;
} routes[] = {
	{ "/v1/completions", "POST", R_COMPLETIONS },
	{ "/v1/chat/completions", "POST", R_CHAT },
	{ "/v1/models", "GET", R_MODELS },
	{ "/tokenize", "POST", R_TOKENIZE },
	{ "/detokenize", "POST", R_DETOKENIZE },
	{ "/health", "GET", R_HEALTH },
	{ "/stats", "GET", R_STATS },
	{ "/metrics", "GET", R_METRICS },
	{ "/", "GET", R_WEB },
};

static bool needs_key(const struct config *c, enum route_id id)
{
	if (!c->server.n_api_keys)
		return false;
	if (id == R_HEALTH)
		return c->server.health_need_key;
	if (id == R_METRICS)
		return c->server.metrics_need_key;
	/* The web view's page is served to anyone who passes the Host and
	 * Origin checks; its figures only with the key (web.h). */
	if (id == R_WEB)
		return false;
	return true;
}

/* ---- worker callbacks (worker thread) ---- */

static void on_text(void *ctx, const char *text, size_t len, const struct worker_token *tok)
{
	struct hreq *r = ctx;
	pthread_mutex_lock(&r->lock);
	if (api_take_text(r, text, len, tok ? tok->id : -1))
		atomic_store(&r->job.cancel, true);  /* out of memory: end it */
	if (tok)
		r->n_sampled++;
	if (tok && r->toks && r->n_tok < r->cap_tok) {
		r->toks[r->n_tok] = *tok;
		r->tok_end[r->n_tok] = r->n_text;
		r->n_tok++;
	}
	if (r->stream && r->suspended && r->conn) {
		r->suspended = false;
		MHD_resume_connection(r->conn);
	}
	/* A non-streamed answer's connection stays suspended, and
	 * libmicrohttpd does not watch a suspended socket: look at it once per
	 * step, so that a client that left stops the generation at the next
	 * step instead of at limits.request_timeout.  (A stream finds out when
	 * its next write fails.) */
	if (!r->stream && r->suspended && r->conn && r->fd >= 0 && !r->client_gone &&
	    peer_closed(r->fd)) {
		r->client_gone = true;
		atomic_store(&r->job.cancel, true);
	}
	pthread_mutex_unlock(&r->lock);
}

static void on_done(void *ctx, const struct worker_result *res)
{
	struct hreq *r = ctx;
	pthread_mutex_lock(&r->lock);
	api_end_text(r);
	r->res = *res;
	r->done = true;
	r->in_worker = false;
	if (r->suspended && r->conn) {
		r->suspended = false;
		MHD_resume_connection(r->conn);
	}
	pthread_mutex_unlock(&r->lock);
	hreq_unref(r);
}

/* ---- server-sent events ---- */

/* The end of a stream whose next event could not be made (out of
 * memory): from static memory, as is [DONE]. */
static const char oom_stream_end[] =
	"data: {\"error\":{\"message\":\"out of memory: the stream ends here\",\"type\":\"server_error\","
	"\"param\":null,\"code\":null}}\n\ndata: [DONE]\n\n";
static const char done_event[] = "data: [DONE]\n\n";

static void set_event(struct hreq *r, char *ev, bool is_static)
{
	if (!r->ev_static)
		free(r->ev);
	r->ev = ev;
	r->ev_static = is_static;
	r->n_ev = strlen(ev);
	r->off_ev = 0;
}

/* Prepare the next event in r->ev; false if there is nothing to send yet
 * (or any more).  Called with r->lock held. */
static bool next_event(struct hreq *r)
{
	char *ev = NULL;
	bool made = true;  /* an event was to be made: NULL is out of memory */
	if (r->sse == 0) {
		r->sse = 1;
		made = r->chat;
		if (r->chat)
			ev = api_stream_chunk(r, 0, 0, 0, 0, 0, 0, NULL, false, true);
	} else if (r->sse == 1) {
		int n_tok = r->n_logprobs >= 0 ? api_tokens_in_text(r) : r->n_tok;
		bool more_tok = r->n_logprobs >= 0 && n_tok > r->sent_tok;
		json_t *call = tools_active(r) ? tools_stream_delta(r) : NULL;
		size_t n_text = tools_content_end(r);   /* a call's text is no content */
		if (call) {
			ev = api_delta_event(r, call);
		} else if (n_text > r->sent_text || r->n_reason > r->sent_reason || more_tok) {
			ev = api_stream_chunk(r, r->sent_text, n_text, r->sent_reason, r->n_reason,
					      r->sent_tok, n_tok, NULL, false, false);
			r->sent_text = n_text;
			r->sent_reason = r->n_reason;
			r->sent_tok = n_tok;
		} else if (r->done) {
			r->sse = 2;
			if (r->res.finish == WORKER_FINISH_ERROR) {
				struct api_error e;
				api_fail(&e, 500, "server_error", NULL, NULL, "generation failed: %s", r->res.err.msg);
				char *body = api_error_body(&e);
				if (body && asprintf(&ev, "data: %s\n\n", body) < 0)
					ev = NULL;
				free(body);
			} else {
				ev = api_stream_chunk(r, 0, 0, 0, 0, 0, 0, api_finish(r), false, false);
				if (ev && r->include_usage) {
					char *u = api_stream_chunk(r, 0, 0, 0, 0, 0, 0, NULL, true, false);
					char *both = NULL;
					if (!u || asprintf(&both, "%s%s", ev, u) < 0)
						both = NULL;
					free(ev);
					free(u);
					ev = both;
				}
			}
		} else {
			return false;
		}
	} else if (r->sse == 2) {
		r->sse = 3;
		set_event(r, (char *)done_event, true);
		return true;
	} else {
		return false;
	}
	if (!ev && !made)
		return next_event(r);
	if (!ev) {
		/* What the event held (text, the finish, the usage) would be
		 * lost, and a stream that goes on without it is wrong output:
		 * it ends here, with an error event, and the job stops. */
		log_warn("%s %s: out of memory for a stream event: the stream ends", r->method, r->path);
		atomic_store(&r->job.cancel, true);
		r->sse = 3;
		set_event(r, (char *)oom_stream_end, true);
		return true;
	}
	set_event(r, ev, false);
	return true;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct hreq *r = cls;
	(void)pos;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		if (r->off_ev < r->n_ev) {
			size_t n = r->n_ev - r->off_ev;
			if (n > max)
				n = max;
			memcpy(buf, r->ev + r->off_ev, n);
			r->off_ev += n;
			pthread_mutex_unlock(&r->lock);
			return (ssize_t)n;
		}
		if (!next_event(r))
			break;
	}
	if (r->sse == 3) {
		pthread_mutex_unlock(&r->lock);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	/* Nothing yet: park the connection until the worker resumes it. */
	r->suspended = true;
	MHD_suspend_connection(r->conn);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* ---- generation ---- */

static enum MHD_Result start_generation(struct server *s, struct hreq *r, json_t *root)
{
	struct api_error e = { 0 };
	if (api_parse_generation(s, r, root, &e))
		return reply_error(r, &e, NULL);
	struct worker_job *j = &r->job;
	j->on_text = on_text;
	j->on_done = on_done;
	j->ctx = r;
	j->deadline = s->cfg->limits.request_timeout > 0 ? r->t_arrival + s->cfg->limits.request_timeout : 0;
	size_t cap = (size_t)j->max_tokens * 8 + 64;
	r->cap_text = cap < (1u << 20) ? cap : (1u << 20);
	r->text = malloc(r->cap_text);
	if (r->harmony) {             /* the reasoning: as much room again */
		r->cap_reason = r->cap_text;
		r->reason = malloc(r->cap_reason);
	}
	if (r->n_logprobs >= 0) {
		r->cap_tok = j->max_tokens;
		r->toks = calloc((size_t)r->cap_tok, sizeof(*r->toks));
		r->tok_end = calloc((size_t)r->cap_tok, sizeof(*r->tok_end));
	}
	if (!r->text || (r->harmony && !r->reason) ||
	    (r->n_logprobs >= 0 && (!r->toks || !r->tok_end))) {
		/* the job never reaches worker_submit, which would take it */
		r->job.grammar = grammar_free(r->job.grammar);
		api_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
		return reply_error(r, &e, NULL);
	}
	static atomic_ullong ids;
	snprintf(r->id, sizeof(r->id), "%s-%llx%06llx", r->chat ? "chatcmpl" : "cmpl",
		 (unsigned long long)s->t_wall, (unsigned long long)atomic_fetch_add(&ids, 1));
	r->created = time(NULL);
	r->is_gen = true;

	struct smk_err err = { 0 };
	pthread_mutex_lock(&r->lock);
	r->refs++;
	r->in_worker = true;
	int rc = worker_submit(s->w, j, &err);
	if (rc) {
		r->refs--;
		r->in_worker = false;
		pthread_mutex_unlock(&r->lock);
		if (rc == -EAGAIN) {
			atomic_fetch_add(&s->rejected_busy, 1);
			api_fail(&e, 503, "overloaded_error", NULL, "queue_full", "%s; try again later", err.msg);
			e.retry_after = 1;
		} else if (rc == -ESHUTDOWN) {
			api_fail(&e, 503, "overloaded_error", NULL, "shutting_down", "%s", err.msg);
			e.retry_after = 5;
		} else if (rc == -E2BIG) {
			api_fail(&e, 400, "invalid_request_error", "max_tokens", "context_length_exceeded", "%s", err.msg);
		} else {
			api_fail(&e, 400, "invalid_request_error", NULL, NULL, "%s", err.msg);
		}
		return reply_error(r, &e, NULL);
	}
	atomic_fetch_add(&s->inflight, 1);
	if (!r->stream) {
		r->suspended = true;
		MHD_suspend_connection(r->conn);
		pthread_mutex_unlock(&r->lock);
		/* The sweep watches the socket while the job is queued or fills
		 * its prompt (on_text only runs once tokens come). */
		if (r->slot) {
			pthread_mutex_lock(&s->conns_lock);
			r->slot->gen = r;
			pthread_mutex_unlock(&s->conns_lock);
		}
		return MHD_YES;
	}
	pthread_mutex_unlock(&r->lock);
	/* A stream is suspended between events, and libmicrohttpd does not
	 * watch a suspended socket either: while the job waits in the queue
	 * or fills its prompt no write can fail, so the sweep watches it as it
	 * does a non-streamed one, and a client that left is cancelled before
	 * its prompt is computed. */
	if (r->slot) {
		pthread_mutex_lock(&s->conns_lock);
		r->slot->gen = r;
		pthread_mutex_unlock(&s->conns_lock);
	}
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
								       stream_read, r, NULL);
	if (!resp) {
		worker_cancel(s->w, j);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	enum MHD_Result ret = MHD_queue_response(r->conn, 200, resp);
	MHD_destroy_response(resp);
	r->answered = true;
	r->status = 200;
	server_count_status(s, 200);
	return ret;
}

/* The worker finished a non-streamed generation: answer it. */
static enum MHD_Result finish_generation(struct hreq *r)
{
	struct api_error e = { 0 };
	if (r->res.finish == WORKER_FINISH_ERROR) {
		api_fail(&e, 500, "server_error", NULL, NULL, "generation failed: %s", r->res.err.msg);
		return reply_error(r, &e, NULL);
	}
	if (r->res.finish == WORKER_FINISH_CANCELLED && r->res.n_gen == 0) {
		api_fail(&e, 503, "overloaded_error", NULL, "cancelled",
			 "the request was cancelled before it produced a token (the server is stopping)");
		e.retry_after = 5;
		return reply_error(r, &e, NULL);
	}
	if (r->res.finish == WORKER_FINISH_TIMEOUT && r->res.n_gen == 0) {
		api_fail(&e, 504, "server_error", NULL, "timeout",
			 "the request waited longer than limits.request_timeout (%g s)",
			 r->srv->cfg->limits.request_timeout);
		return reply_error(r, &e, NULL);
	}
	return reply_json(r, 200, api_generation_body(r));
}

/* ---- the access handler ---- */

/* The head of a request is complete: framing, route, Host and Origin,
 * key, media type and declared size are checked before a byte of its body
 * is read.  A refusal here leaves the body unread, so it closes the
 * connection (r->close_after): the body is never parsed as a request. */
static enum MHD_Result admit(struct server *s, struct hreq *r, int over)
{
	struct api_error e = { 0 };
	const struct route *rt = NULL;
	char allow[64] = "";
	const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	r->close_after = te || (cl && strcmp(cl, "0"));
	if (over != OVER_NONE) {
		r->close_after = true;
		api_fail(&e, 503, "overloaded_error", NULL, "too_many_connections",
			 over == OVER_IP ? "too many connections from this address (limits.max_connections_per_ip = %d)" :
					   "too many connections (limits.max_connections = %d)",
			 over == OVER_IP ? s->cfg->limits.max_connections_per_ip : s->cfg->limits.max_connections);
		e.retry_after = 1;
		return reply_error(r, &e, NULL);
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(routes[i].path, r->path))
			continue;
		if (!strcmp(routes[i].method, r->method) ||
		    (!strcmp(r->method, "HEAD") && !strcmp(routes[i].method, "GET")))
			rt = &routes[i];
		else {
			/* RFC 9110: Allow lists every method of the path, so a path
			 * that gains a second route names both. */
			size_t at = strlen(allow);
			snprintf(allow + at, sizeof(allow) - at, "%s%s", at ? ", " : "", routes[i].method);
		}
	}
	if (!rt && allow[0]) {
		api_fail(&e, 405, "invalid_request_error", NULL, "method_not_allowed",
			 "%s is not allowed on %s; use %s", r->method, r->path, allow);
		return reply_error(r, &e, allow);
	}
	if (!rt) {
		api_fail(&e, 404, "not_found_error", NULL, "not_found", "no such endpoint: %s %.60s",
			 r->method, r->path);
		return reply_error(r, &e, NULL);
	}
	if (guard_access(r->conn, s->cfg, !strcmp(rt->method, "POST"), &e))
		return reply_error(r, &e, NULL);
	if (needs_key(s->cfg, rt->id) &&
	    !key_ok(s->cfg, MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION))) {
		api_fail(&e, 401, "authentication_error", NULL, "invalid_api_key",
			 "missing or wrong API key (Authorization: Bearer <key>)");
		return reply_error(r, &e, NULL);
	}
	const uint64_t max_body = s->cfg->limits.max_body;
	if (cl) {
		/* The framing scanner let only digits through (framing.c). */
		errno = 0;
		unsigned long long n = strtoull(cl, NULL, 10);
		if (errno || n > max_body) {
			r->body_too_large = true;
			api_fail(&e, 413, "invalid_request_error", NULL, "body_too_large",
				 "the body is larger than %llu bytes (limits.max_body)", (unsigned long long)max_body);
			return reply_error(r, &e, NULL);
		}
		if (n)
			r->cap_body = (size_t)n;
	}
	r->route = (int)rt->id;
	r->close_after = false;
	return MHD_YES;
}

/* The whole request is in (admit passed it): answer it. */
static enum MHD_Result handle(struct server *s, struct hreq *r)
{
	struct api_error e = { 0 };
	const struct route *rt = NULL;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if ((int)routes[i].id == r->route)
			rt = &routes[i];
	if (!rt)
		return MHD_NO;
	int state = atomic_load(&s->state);
	switch (rt->id) {
	case R_HEALTH: {
		/* Draining: still READY for every other route, but a balancer
		 * polling /health takes the replica out before it stops. */
		/* A model file cut short under the daemon (util/mapfile.h)
		 * fails every generation from then on: "failed", so that a
		 * balancer stops sending and a supervisor may restart it. */
		const bool damaged = smk_map_faults() != 0;
		const bool ok = state == SERVER_READY && !atomic_load(&s->draining) && !damaged;
		const char *st = ok ? "ok" : damaged ? "failed" : state == SERVER_READY ? "draining"
			: state == SERVER_LOADING ? "loading" : "stopping";
		char *body = NULL;
		if (asprintf(&body, "{\"status\":\"%s\"}", st) < 0)
			body = NULL;
		if (ok)
			return reply_json(r, 200, body);
		return reply(r, 503, "application/json", body, 5, NULL);
	}
	case R_STATS:
		return reply_json(r, 200, server_stats_json(s));
	case R_METRICS: {
		char *m = server_metrics_text(s);
		if (!m)
			return reply_json(r, 500, NULL);
		return reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", m, 0, NULL);
	}
	case R_MODELS:
		return reply_json(r, 200, api_models(s));
	case R_WEB: {
		const struct config *c = s->cfg;
		bool figures = !c->server.n_api_keys ||
			key_ok(c, MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION));
		char *page = web_page(s, figures);
		return page ? reply(r, 200, WEB_CONTENT_TYPE, page, 0, NULL) : reply_json(r, 500, NULL);
	}
	default:
		break;
	}
	/* Everything below needs the model. */
	if (state != SERVER_READY) {
		atomic_fetch_add(&s->rejected_loading, 1);
		api_fail(&e, 503, "overloaded_error", NULL, state == SERVER_LOADING ? "loading" : "shutting_down",
			 state == SERVER_LOADING ? "the model is still loading" : "the server is shutting down");
		e.retry_after = 5;
		return reply_error(r, &e, NULL);
	}
	json_error_t jerr;
	bool nomem;
	json_t *root = json_loadb_checked(r->body ? r->body : "", r->n_body, JSON_REJECT_DUPLICATES, &jerr, &nomem);
	if (nomem) {
		api_fail(&e, 500, "server_error", NULL, NULL, "out of memory reading the body");
		return reply_error(r, &e, NULL);
	}
	if (!root) {
		api_fail(&e, 400, "invalid_request_error", NULL, "invalid_json",
			 "the body is not valid JSON (line %d, column %d): %s", jerr.line, jerr.column, jerr.text);
		return reply_error(r, &e, NULL);
	}
	enum MHD_Result ret;
	char *body = NULL;
	int status;
	switch (rt->id) {
	case R_COMPLETIONS:
	case R_CHAT:
		r->chat = rt->id == R_CHAT;
		ret = start_generation(s, r, root);
		break;
	case R_TOKENIZE:
	case R_DETOKENIZE:
		status = rt->id == R_TOKENIZE ? api_tokenize(s, root, &body, &e) : api_detokenize(s, root, &body, &e);
		ret = status < 0 ? reply_error(r, &e, NULL) : reply_json(r, status, body);
		break;
	default:
		ret = MHD_NO;
	}
	json_decref(root);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct server *s = cls;
	struct hreq *r = *con_cls;
	const uint64_t max_body = s->cfg->limits.max_body;
	(void)version;
	if (!r) {
		r = hreq_new(s, conn, method, url);
		if (!r)
			return reply_no_request(s, conn);
		*con_cls = r;
		/* The headers are complete: the sweep's header bound is over. */
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		r->slot = ci ? ci->socket_context : NULL;
		enum MHD_Result ret = admit(s, r, r->slot ? r->slot->over : OVER_NONE);
		if (r->slot) {
			pthread_mutex_lock(&s->conns_lock);
			r->slot->in_headers = false;
			r->slot->t_hup = 0;
			r->slot->uploading = !r->answered && ret == MHD_YES;
			pthread_mutex_unlock(&s->conns_lock);
		}
		return ret;
	}
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (r->answered)
			return MHD_YES;
		/* libmicrohttpd's timeout only closes idle connections: a client
		 * that trickles its body a byte at a time would hold the
		 * connection (and a per-IP slot) for as long as max_body lasts.
		 * The whole body must arrive within connection_timeout of the
		 * headers; past that the connection is dropped. */
		const double body_limit = s->cfg->limits.connection_timeout;
		if (body_limit > 0 && smk_now() - r->t_arrival > body_limit) {
			log_client(LOG_INFO, "%s %s: body not complete %g s after the headers (%zu bytes so far; "
				   "limits.connection_timeout); closing the connection",
				   r->method, r->path, body_limit, r->n_body + n);
			return MHD_NO;
		}
		if (r->body_too_large || r->body_no_memory)
			return MHD_YES;
		if (r->n_body + n > max_body) {
			/* A chunked body (its size unknown until its end): while a
			 * body is being received libmicrohttpd cannot queue a
			 * response, so the rest is read and discarded (bounded by
			 * the time limit above) and the 413 goes out at its end. */
			r->body_too_large = true;
			free(r->body);
			r->body = NULL;
			r->n_body = r->cap_body = 0;
			return MHD_YES;
		}
		if (!r->body || r->n_body + n + 1 > r->cap_body || r->cap_body == 0) {
			size_t cap = r->cap_body > r->n_body + n + 1 ? r->cap_body + 1 : (r->n_body + n + 1) * 2;
			if (cap > max_body + 1)
				cap = max_body + 1;
			char *b = realloc(r->body, cap);
			if (!b) {
				/* As for a body too large: the rest is read
				 * and dropped, the 500 goes out at its end. */
				r->body_no_memory = true;
				free(r->body);
				r->body = NULL;
				r->n_body = r->cap_body = 0;
				return MHD_YES;
			}
			r->body = b;
			r->cap_body = cap;
		}
		memcpy(r->body + r->n_body, upload, n);
		r->n_body += n;
		return MHD_YES;
	}
	if (r->slot && r->slot->uploading) {
		pthread_mutex_lock(&s->conns_lock);
		r->slot->uploading = false;
		pthread_mutex_unlock(&s->conns_lock);
	}
	if (r->answered)
		return MHD_YES;
	if (r->body_no_memory) {
		struct api_error e;
		r->close_after = true;
		api_fail(&e, 500, "server_error", NULL, NULL, "out of memory for the body");
		return reply_error(r, &e, NULL);
	}
	if (r->body_too_large) {
		struct api_error e;
		r->close_after = true;
		api_fail(&e, 413, "invalid_request_error", NULL, "body_too_large",
			 "the body is larger than %llu bytes (limits.max_body)", (unsigned long long)max_body);
		return reply_error(r, &e, NULL);
	}
	if (r->is_gen) {
		/* Resumed: the worker is done with a non-streamed generation. */
		pthread_mutex_lock(&r->lock);
		bool done = r->done, gone = r->client_gone;
		pthread_mutex_unlock(&r->lock);
		if (done && gone)
			return MHD_NO;  /* nobody to answer: close, count no status */
		return done ? finish_generation(r) : MHD_YES;
	}
	return handle(s, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct server *s = cls;
	struct hreq *r = *con_cls;
	(void)conn;
	if (!r)
		return;
	*con_cls = NULL;
	if (r->slot) {
		/* A kept-alive connection's next request starts its header phase
		 * now; and the sweep must let go of r before it is freed. */
		pthread_mutex_lock(&s->conns_lock);
		r->slot->gen = NULL;
		r->slot->in_headers = true;
		r->slot->uploading = false;
		r->slot->t_hup = 0;
		r->slot->t_phase = smk_now();
		r->slot->served++;
		pthread_mutex_unlock(&s->conns_lock);
	}
	pthread_mutex_lock(&r->lock);
	r->conn = NULL;
	bool cancel = r->in_worker, gone = cancel || r->client_gone;
	pthread_mutex_unlock(&r->lock);
	if (cancel)
		worker_cancel(s->w, &r->job);
	if (r->is_gen) {
		atomic_fetch_sub(&s->inflight, 1);
		log_info("%s %s %d %.3f s: prompt %d, generated %d tokens, %s%s", r->method, r->path,
			 r->status, smk_now() - r->t_arrival, r->n_prompt, r->res.n_gen,
			 gone ? "client went away" : worker_finish_name(r->res.finish),
			 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK || gone ? "" : " (connection closed early)");
	} else {
		log_debug("%s %s %d %.3f s", r->method, r->path, r->status, smk_now() - r->t_arrival);
	}
	hreq_unref(r);
}

static bool same_addr(const struct conn_slot *a, const struct conn_slot *b)
{
	if (a->addr.ss_family != b->addr.ss_family)
		return false;
	if (a->addr.ss_family == AF_INET)
		return !memcmp(&((const struct sockaddr_in *)&a->addr)->sin_addr,
			       &((const struct sockaddr_in *)&b->addr)->sin_addr, sizeof(struct in_addr));
	if (a->addr.ss_family == AF_INET6)
		return !memcmp(&((const struct sockaddr_in6 *)&a->addr)->sin6_addr,
			       &((const struct sockaddr_in6 *)&b->addr)->sin6_addr, sizeof(struct in6_addr));
	return false;
}

/* A new connection (cs, already in the list; conns_lock held): over the
 * per-address limit it is marked to get a 503 at its first request.  Over
 * limits.max_connections, the connection idle longest between requests
 * (kept alive after an answer, or silent since its accept) is shut down to
 * make room - clients reopen a closed idle connection as a matter of
 * course - and only when none is idle is the new one marked for a 503.
 * libmicrohttpd's own limits sit above these (start_mhd), so that the
 * connections over them can be answered instead of reset. */
static void admit_connection(struct server *s, struct conn_slot *cs)
{
	const struct config *c = s->cfg;
	const double now = smk_now();
	int live = 0, same = 0;
	struct conn_slot *idle = NULL;
	DLIST_FOR_EACH(struct conn_slot, o, &s->conns, link) {
		/* Connections shut down or refused are on their way out. */
		if (o == cs || o->cut || o->over)
			continue;
		live++;
		if (same_addr(o, cs))
			same++;
		/* Idle: between requests for a while (not a request's head
		 * just arriving); kept-alive ones first, then the oldest. */
		if (o->in_headers && o->fd >= 0 && !o->uploading && !o->gen && now - o->t_phase > 0.5 &&
		    (!idle || (o->served > 0) > (idle->served > 0) ||
		     ((o->served > 0) == (idle->served > 0) && o->t_phase < idle->t_phase)))
			idle = o;
	}
	if (c->limits.max_connections_per_ip > 0 && same >= c->limits.max_connections_per_ip) {
		cs->over = OVER_IP;
		return;
	}
	if (live < c->limits.max_connections)
		return;
	if (idle) {
		idle->cut = true;
		log_client(LOG_INFO, "%d connections open (limits.max_connections): closing one idle for %.1f s "
			   "to make room", live + 1, now - idle->t_phase);
		shutdown(idle->fd, SHUT_RDWR);
		return;
	}
	cs->over = OVER_TOTAL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
			  enum MHD_ConnectionNotificationCode code)
{
	struct server *s = cls;
	struct conn_slot *cs = *socket_ctx;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		atomic_fetch_add(&s->conns_open, 1);
		atomic_fetch_add(&s->conns_total, 1);
		/* Without a slot (out of memory) the connection is served, with
		 * only libmicrohttpd's idle timeout on its headers. */
		cs = calloc(1, sizeof(*cs));
		if (!cs)
			return;
		cs->fd = conn_fd(c);
		cs->t_phase = smk_now();
		cs->in_headers = true;
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (ci && ci->client_addr) {
			size_t len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
					     sizeof(struct sockaddr_in);
			memcpy(&cs->addr, ci->client_addr, len);
			cs->addr_len = (socklen_t)len;
		}
		pthread_mutex_lock(&s->conns_lock);
		dlist_push(&s->conns, &cs->link);
		admit_connection(s, cs);
		pthread_mutex_unlock(&s->conns_lock);
		*socket_ctx = cs;
	} else {
		atomic_fetch_sub(&s->conns_open, 1);
		if (!cs)
			return;
		pthread_mutex_lock(&s->conns_lock);
		dlist_remove(&s->conns, &cs->link);
		pthread_mutex_unlock(&s->conns_lock);
		free(cs);
		*socket_ctx = NULL;
	}
}

/* Run by the main thread a few times a second.
 *  - libmicrohttpd's timeout closes idle connections only, and each byte
 *    received resets it: a client trickling its headers a byte at a time
 *    would hold its connection (and a per-IP slot) indefinitely.  Headers
 *    not complete within limits.connection_timeout of the accept (or of the
 *    previous response) get their socket shut down; libmicrohttpd then
 *    reads the end and closes the connection itself.  Calling into
 *    libmicrohttpd from this thread would not be safe; shutdown() is, since
 *    the slot (under conns_lock) proves the fd is still that connection's.
 *  - A queued or prefilling non-streamed job whose client has left is
 *    cancelled (on_text watches it once tokens come). */
static void sweep_connections(struct server *s)
{
	const double limit = s->cfg->limits.connection_timeout, now = smk_now();
	pthread_mutex_lock(&s->conns_lock);
	DLIST_FOR_EACH(struct conn_slot, cs, &s->conns, link) {
		if (cs->in_headers && !cs->cut && cs->fd >= 0 && limit > 0 && now - cs->t_phase > limit) {
			cs->cut = true;
			log_client(LOG_INFO, "request headers not complete within %g s (limits.connection_timeout); "
				   "closing the connection", limit);
			shutdown(cs->fd, SHUT_RDWR);
		}
		/* A peer that closed its end while its connection was idle or
		 * sending a body: libmicrohttpd 0.9.75 (epoll, edge-triggered)
		 * can miss that end when it had bytes left to read, and keeps
		 * the socket in CLOSE-WAIT until the idle timeout - a burst of
		 * aborted uploads fills the per-address limit.  Seen on two
		 * sweeps half a second apart, the socket is shut down, which
		 * wakes libmicrohttpd to close it.  (A complete request from a
		 * client that half-closes after sending it is answered well
		 * within that time.) */
		if ((cs->in_headers || cs->uploading) && !cs->cut && cs->fd >= 0 && !cs->gen) {
			struct pollfd pfd = { .fd = cs->fd, .events = POLLRDHUP };
			if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
				if (!cs->t_hup)
					cs->t_hup = now;
				else if (now - cs->t_hup > 0.5) {
					cs->cut = true;
					log_client(LOG_INFO, "client closed its end %s; closing the connection",
						   cs->uploading ? "in the middle of a request body" : "while idle");
					shutdown(cs->fd, SHUT_RDWR);
				}
			} else {
				cs->t_hup = 0;
			}
		}
		struct hreq *r = cs->gen;
		if (!r || cs->fd < 0)
			continue;
		/* Lock order: conns_lock, r->lock, then the worker's own lock;
		 * in_worker under r->lock means on_done has not run yet. */
		pthread_mutex_lock(&r->lock);
		if (r->in_worker && !r->client_gone && peer_closed(cs->fd)) {
			r->client_gone = true;
			worker_cancel(s->w, &r->job);
		}
		pthread_mutex_unlock(&r->lock);
	}
	pthread_mutex_unlock(&s->conns_lock);
}

struct json_t *server_inflight_json(struct server *s)
{
	json_t *a = json_array();
	const double now = smk_now();
	pthread_mutex_lock(&s->conns_lock);
	DLIST_FOR_EACH(struct conn_slot, cs, &s->conns, link) {
		struct hreq *r = cs->gen;
		if (!a)
			break;
		if (!r)
			continue;
		/* Lock order as in the sweep: conns_lock, then r->lock. */
		pthread_mutex_lock(&r->lock);
		if (r->in_worker)
			json_array_append_new(a, json_pack("{s:s, s:s, s:b, s:s, s:i, s:i, s:i, s:f}",
				"id", r->id, "endpoint", r->path, "stream", r->stream,
				"state", r->n_sampled ? "generating" : "waiting",
				"prompt_tokens", r->n_prompt, "generated_tokens", r->n_sampled,
				"max_tokens", r->job.max_tokens, "age_s", now - r->t_arrival));
		pthread_mutex_unlock(&r->lock);
	}
	pthread_mutex_unlock(&s->conns_lock);
	return a;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	/* Its connections are socketpairs from front.c, where TCP_NODELAY and
	 * TCP_CORK do not exist (libmicrohttpd 0.9.75 tries them before each
	 * send and reports the failure, and then that it could not push the
	 * data: a Unix socket has nothing to push). */
	if (strstr(buf, "TCP_NODELAY") || strstr(buf, "TCP_CORK") || strstr(buf, "push the data from buffers"))
		return;
	/* libmicrohttpd reports what clients do wrong (a closed connection,
	 * a malformed request) as errors: rate-limited. */
	log_client(LOG_WARN, "http: %s", buf);
}

/* ---- listening and stopping (the lifecycle is serve/serve.c's) ---- */

/* Connections over a configured limit that are still accepted, to be
 * answered 503. */
static int hard_extra(int limit)
{
	return limit / 4 > 16 ? limit / 4 : 16;
}

static struct MHD_Daemon *start_mhd(struct server *s)
{
	const struct config *c = s->cfg;
	/* The connections come from front.c (MHD_add_connection from its
	 * thread: hence the inter-thread channel). */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
	return MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)c->server.http_threads,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(c->limits.connection_timeout + 0.5),
		/* Above the configured limits, which admit_connection enforces
		 * with a 503 (or by closing idle connections): past these hard
		 * ones libmicrohttpd closes a connection without a status. */
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)(c->limits.max_connections + hard_extra(c->limits.max_connections)),
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, c->limits.max_connections_per_ip ?
			(unsigned)(c->limits.max_connections_per_ip + hard_extra(c->limits.max_connections_per_ip)) : 0u,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)c->limits.connection_memory,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
		MHD_OPTION_END);
}

/* The longest request head the front takes: a quarter of libmicrohttpd's
 * per-connection pool (which holds the head, its parsed fields and the
 * response's head), so that libmicrohttpd never runs out of it on a head
 * the front passed. */
static size_t head_max(const struct config *c)
{
	size_t n = (size_t)c->limits.connection_memory / 4;
	return n < 2048 ? 2048 : n > 65536 ? 65536 : n;
}

int server_listen(struct server *s, const struct config *cfg, const char *model_path,
		  const char *model_id, struct smk_err *err)
{
	s->cfg = cfg;
	s->t_start = smk_now();
	s->t_wall = (long long)time(NULL);
	atomic_store(&s->state, SERVER_LOADING);
	snprintf(s->model_path, sizeof(s->model_path), "%s", model_path);
	snprintf(s->model_id, sizeof(s->model_id), "%s", model_id);
	pthread_mutex_init(&s->conns_lock, NULL);
	char port[8];
	snprintf(port, sizeof(port), "%d", cfg->server.port);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
	int gai = getaddrinfo(cfg->server.host, port, &hints, &ai);
	if (gai)
		return smk_fail(err, -EINVAL, "server.host '%s': %s", cfg->server.host, gai_strerror(gai));
	struct smk_err ferr = { 0 };
	/* Room for libmicrohttpd's hard limit and as many again closing
	 * (a relay lives on until both its sides are done). */
	const int hard = cfg->limits.max_connections + hard_extra(cfg->limits.max_connections);
	s->front = front_open(s, ai, head_max(cfg), 2 * hard, &s->port, &ferr);
	freeaddrinfo(ai);
	if (!s->front)
		return smk_fail(err, -EADDRINUSE,
				"cannot listen on %s port %d (in use, or not an address of this host?): %s",
				cfg->server.host, cfg->server.port, ferr.msg);
	s->mhd = start_mhd(s);
	if (!s->mhd) {
		front_close(s->front);
		s->front = NULL;
		return smk_fail(err, -ENOMEM, "cannot start libmicrohttpd");
	}
	if (front_start(s->front, s->mhd, err)) {
		MHD_stop_daemon(s->mhd);
		s->mhd = NULL;
		front_close(s->front);
		s->front = NULL;
		return -1;
	}
	return 0;
}

void server_publish(struct server *s, struct engine *e, struct worker *w, enum chat_format chat)
{
	s->chat = chat;
	s->e = e;
	s->w = w;
	/* The release store publishes e, w and chat to the HTTP threads. */
	atomic_store(&s->state, SERVER_READY);
}

void server_fail(struct server *s)
{
	atomic_store(&s->state, SERVER_FAILED);
}

void server_drain(struct server *s)
{
	atomic_store(&s->draining, true);
}

void server_sweep(struct server *s)
{
	sweep_connections(s);
}

void server_stop(struct server *s, double grace)
{
	int state = atomic_load(&s->state);
	atomic_store(&s->state, state == SERVER_FAILED ? SERVER_FAILED : SERVER_STOPPING);
	front_stop_accepting(s->front);
	if (s->w) {
		worker_drain(s->w, grace);
		/* Give the last responses a moment to reach their clients. */
		double until = smk_now() + 5;
		while (atomic_load(&s->inflight) > 0 && smk_now() < until)
			usleep(10000);
	}
	MHD_stop_daemon(s->mhd);
	s->mhd = NULL;
	front_close(s->front);
	s->front = NULL;
}
