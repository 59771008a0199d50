/* server.h - the HTTP daemon: libmicrohttpd in front of the worker.
 *
 * Connections are accepted by the front (front.h: one libuv thread), which
 * checks every request's framing (framing.h) and relays the connection to
 * libmicrohttpd over a socketpair; libmicrohttpd never listens itself.
 *
 * Threading: libmicrohttpd runs `server.http_threads` event-loop threads
 * (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL with a thread pool), not
 * a thread per connection: a connection costs a socket and a memory pool,
 * not a thread, so slow clients and long streams cannot exhaust threads, and
 * the connection limits below stay meaningful.  No server thread ever waits
 * for the worker: a generation request is handed to the worker with
 * callbacks that write into the request's own buffer (struct hreq, under its
 * mutex), and the connection is suspended (MHD_suspend_connection) whenever
 * it has nothing to send; the worker's callback resumes it.
 *
 * Limits enforced here: connection idle timeout, total and per-IP
 * connection counts, a memory pool per connection, the body size (checked
 * against Content-Length before reading and while reading), the queue
 * (worker_submit's -EAGAIN -> 503 + Retry-After).  libmicrohttpd's timeout
 * only closes idle connections, so a client trickling its request a byte at
 * a time is bounded here: its headers must be complete within
 * limits.connection_timeout of the accept (or of the previous response on a
 * kept-alive connection; a sweep on the main thread shuts such sockets
 * down), and its body within as long again of the headers.
 *
 * A client that leaves: a stream finds out when a write fails.  A
 * non-streamed request's connection is suspended until the answer is ready,
 * and libmicrohttpd does not watch a suspended socket, so the worker's text
 * callback looks at the socket once per generated token (and the sweep
 * looks while the job waits in the queue or fills its prompt); a closed one
 * cancels the job at the next step.
 *
 * Lifecycle (driven by serve/serve.c): server_listen answers /health with
 * 503 "loading" until server_publish hands it the loaded engine and worker;
 * server_stop stops accepting connections, lets in-flight requests finish
 * for the grace period, cancels the rest (their streams end cleanly) and
 * stops the HTTP threads.  Before it, server_drain may turn /health to 503
 * "draining" while everything else is still served (limits.drain_delay), so
 * that load balancers stop sending before the listener closes.
 */
#ifndef SMK_HTTP_SERVER_H
#define SMK_HTTP_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "util/dlist.h"
#include "util/err.h"
#include "engine/engine.h"
#include "engine/worker.h"
#include "engine/chat.h"

enum server_state { SERVER_LOADING, SERVER_READY, SERVER_STOPPING, SERVER_FAILED };

struct conn_slot;
struct front;

/* HTTP statuses counted by /metrics. */
enum { HTTP_CODES = 14 };
extern const int server_codes[HTTP_CODES];

struct server {
	const struct config *cfg;
	struct MHD_Daemon *mhd;
	struct front *front;               /* the listener and relay (front.h) */
	int port;                          /* the bound port */
	atomic_int state;
	atomic_bool draining;              /* READY, but /health says 503 "draining" */
	double t_start;                    /* smk_now() at start */
	long long t_wall;                  /* time(NULL) at start */
	/* Set by the loader before state becomes READY; read-only after. */
	struct engine *e;
	struct worker *w;
	enum chat_format chat;
	char model_id[128];
	char model_path[CONFIG_PATH_MAX];
	/* Counters. */
	atomic_ullong responses[HTTP_CODES + 1];   /* by server_codes, last: other */
	atomic_ullong rejected_busy, rejected_loading;
	atomic_ullong conns_open, conns_total;
	atomic_int inflight;                       /* generation requests not yet completed */
	/* Open connections (server.c's struct conn_slot), for the sweep. */
	pthread_mutex_t conns_lock;
	struct dlist conns;   /* of struct conn_slot */
};

/* Listen on server.host / server.port (port 0: any; s->port says which)
 * and answer /health with 503 "loading".  s must be zero-initialised and
 * outlive the HTTP threads; cfg must outlive s.  Returns 0, or a negative
 * code with err naming the address. */
int server_listen(struct server *s, const struct config *cfg, const char *model_path,
		  const char *model_id, struct smk_err *err);

/* The model is loaded: serve it.  e and w stay the caller's (freed after
 * server_stop). */
void server_publish(struct server *s, struct engine *e, struct worker *w, enum chat_format chat);

/* Loading failed: /health says so until the caller stops the server. */
void server_fail(struct server *s);

/* Shut down connections whose headers or body trickle in past
 * limits.connection_timeout, and cancel the jobs of clients gone while
 * suspended.  Called a few times a second by the thread that owns s. */
void server_sweep(struct server *s);

/* From now on /health answers 503 "draining"; every other request is still
 * served as before.  Called by the thread that owns s before server_stop. */
void server_drain(struct server *s);

/* Stop accepting, drain the worker for grace seconds, wait briefly for the
 * last responses, stop the HTTP threads. */
void server_stop(struct server *s, double grace);

/* Count a response status. */
void server_count_status(struct server *s, int status);

/* /stats and /metrics bodies (malloc'd strings; NULL on out of memory). */
char *server_stats_json(struct server *s);
char *server_metrics_text(struct server *s);

/* The same /stats document as a jansson object (new reference; NULL on
 * out of memory), for the web view's table. */
struct json_t;
struct json_t *server_stats_object(struct server *s);

/* The generation requests in the worker's hands now, in no particular
 * order (a jansson array, new reference; /stats requests.in_flight). */
struct json_t *server_inflight_json(struct server *s);

#endif
