/* server.h - the HTTP daemon: libmicrohttpd in front of the worker.
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
 * Lifecycle (server_run): listen first, answer /health with 503 "loading"
 * while the model loads on another thread, then 200 and READY=1 to systemd.
 * SIGTERM/SIGINT: STOPPING=1, stop accepting connections, let in-flight
 * requests finish for limits.shutdown_grace seconds, cancel the rest (their
 * streams end cleanly), stop, exit 0.
 */
#ifndef SMK_HTTP_SERVER_H
#define SMK_HTTP_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "engine/engine.h"
#include "engine/worker.h"
#include "http/chat.h"

enum server_state { SERVER_LOADING, SERVER_READY, SERVER_STOPPING, SERVER_FAILED };

struct conn_slot;

/* HTTP statuses counted by /metrics. */
enum { HTTP_CODES = 10 };
extern const int server_codes[HTTP_CODES];

struct server {
	const struct config *cfg;
	struct MHD_Daemon *mhd;
	int port;                          /* the bound port */
	atomic_int state;
	double t_start;                    /* engine_now() at start */
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
	struct conn_slot *conns;
};

/* Run the daemon until SIGTERM/SIGINT.  Returns the process exit status. */
int server_run(const struct config *cfg);

/* Count a response status. */
void server_count_status(struct server *s, int status);

/* /stats and /metrics bodies (malloc'd strings; NULL on out of memory). */
char *server_stats_json(struct server *s);
char *server_metrics_text(struct server *s);

#endif
