/* front.c - accepting connections and relaying them through the framing
 * scanner to libmicrohttpd (front.h). */
#include "http/front.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <uv.h>

#include "http/framing.h"
#include "http/server.h"
#include "util/clock.h"
#include "util/dlist.h"
#include "util/log.h"

enum { OUT_CAP = 16384 };

/* A client closed by us (after an error, or when libmicrohttpd closed its
 * side) is read and discarded for this long before the socket closes, so
 * that bytes it was still sending do not reset the connection before it
 * reads the answer. */
static const double LINGER_S = 2.0;

struct relay {
	struct front *front;
	uv_tcp_t client;
	uv_pipe_t mhd;                 /* our end of the socketpair */
	struct framing framing;
	char *in;                      /* the client's bytes not yet passed on: [0, in_len) */
	size_t in_len, in_pass;        /* in_pass: the first bytes, being written */
	char *out;                     /* libmicrohttpd's bytes being written */
	char *answer;                  /* the refusal being written (malloc'd) */
	uv_write_t w_in, w_out;
	uv_shutdown_t sd_mhd, sd_client;
	bool writing_in, writing_out, mhd_shut, client_shut;
	bool client_eof, mhd_eof, mhd_gone, refused, closing;
	struct api_error err;
	double t_linger;               /* > 0: discarding the client's bytes until then */
	int open_handles;
	struct dlist_node link;        /* in front->relays */
	char peer[64];
};

struct front {
	struct server *srv;
	struct MHD_Daemon *mhd;
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_async_t wake;
	uv_timer_t tick;
	pthread_t thread;
	bool started;
	size_t head_max;
	int n_relays, max_relays;
	uv_tcp_t spare;                /* takes a refused connection to close it */
	bool spare_busy, reject_waiting, reject_oom;
	char oom_answer[256], busy_answer[320];
	atomic_int request;            /* what wake asks: 1 stop accepting, 2 close everything */
	bool listening;
	atomic_bool accepting;         /* cleared by the loop once the listener is closed */
	struct dlist relays;
};

static void pump_in(struct relay *r);
static void close_relay(struct relay *r);
static void alloc_in(uv_handle_t *h, size_t want, uv_buf_t *buf);
static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void on_mhd_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static struct relay *of_handle(uv_handle_t *h)
{
	return h->data;
}

/* ---- closing ---- */

static void on_closed(uv_handle_t *h)
{
	struct relay *r = of_handle(h);
	if (--r->open_handles)
		return;
	struct front *f = r->front;
	f->n_relays--;
	dlist_remove(&f->relays, &r->link);
	free(r->answer);
	free(r);
}

static void close_relay(struct relay *r)
{
	if (r->closing)
		return;
	r->closing = true;
	uv_close((uv_handle_t *)&r->client, on_closed);
	uv_close((uv_handle_t *)&r->mhd, on_closed);
}

/* Done with the client: FIN after what was written, then discard what it
 * still sends for LINGER_S (the tick closes it then, or its EOF does). */
static void on_client_shut(uv_shutdown_t *sd, int status)
{
	struct relay *r = sd->data;
	if (status < 0 || r->client_eof)
		close_relay(r);
}

static void finish_client(struct relay *r)
{
	if (r->client_shut || r->closing)
		return;
	r->client_shut = true;
	r->t_linger = smk_now() + LINGER_S;
	r->sd_client.data = r;
	if (uv_shutdown(&r->sd_client, (uv_stream_t *)&r->client, on_client_shut)) {
		close_relay(r);
		return;
	}
	/* Read (and drop) until its end: stopped first, since it may be
	 * reading already. */
	uv_read_stop((uv_stream_t *)&r->client);
	if (!r->client_eof && uv_read_start((uv_stream_t *)&r->client, alloc_in, on_client_read))
		close_relay(r);
}

static void on_mhd_shut(uv_shutdown_t *sd, int status)
{
	(void)sd;
	(void)status;
}

/* No more bytes for libmicrohttpd: it reads its end (and closes the
 * connection once its answers are out). */
static void finish_mhd(struct relay *r)
{
	if (r->mhd_shut || r->closing || r->mhd_gone)
		return;
	r->mhd_shut = true;
	r->sd_mhd.data = r;
	if (uv_shutdown(&r->sd_mhd, (uv_stream_t *)&r->mhd, on_mhd_shut))
		r->mhd_gone = true;
}

/* ---- a refused request ---- */

/* Whole answers that need no memory of their own (made at start, in
 * struct front): when the one meant cannot be made, and for connections
 * refused at their accept (written at once to the new socket, whose buffer
 * is empty). */
static const char oom_body[] =
	"{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
static const char busy_body[] =
	"{\"error\":{\"message\":\"too many connections open; try again\",\"type\":\"overloaded_error\","
	"\"param\":null,\"code\":\"too_many_connections\"}}";

static void make_answer(char *dst, size_t cap, const char *status, const char *extra, const char *body)
{
	snprintf(dst, cap, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s"
		 "Connection: close\r\n\r\n%s", status, strlen(body), extra, body);
}

static const char *reason(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 505: return "HTTP Version Not Supported";
	}
	return "Error";
}

static void on_answer_written(uv_write_t *w, int status)
{
	struct relay *r = w->data;
	if (status < 0)
		close_relay(r);
	else
		finish_client(r);
}

/* libmicrohttpd has answered the requests before the refused one and
 * closed its side: the refusal goes out, then the connection closes. */
static void send_refusal(struct relay *r)
{
	char *body = api_error_body(&r->err);
	size_t n = body ? strlen(body) + 200 : 0;
	r->answer = body ? malloc(n) : NULL;
	uv_buf_t buf;
	if (r->answer) {
		int len = snprintf(r->answer, n,
				   "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
				   "Connection: close\r\n\r\n%s",
				   r->err.status, reason(r->err.status), strlen(body), body);
		buf = uv_buf_init(r->answer, (unsigned)len);
	} else {
		buf = uv_buf_init(r->front->oom_answer, (unsigned)strlen(r->front->oom_answer));
	}
	free(body);
	r->w_out.data = r;
	if (uv_write(&r->w_out, (uv_stream_t *)&r->client, &buf, 1, on_answer_written))
		close_relay(r);
}

static void refuse(struct relay *r, const struct api_error *e)
{
	r->refused = true;
	r->err = *e;
	server_count_status(r->front->srv, e->status);
	log_client(LOG_WARN, "http: %s: %d %s", r->peer, e->status, e->msg);
	uv_read_stop((uv_stream_t *)&r->client);
	if (!r->writing_in)
		finish_mhd(r);
	if (r->mhd_eof && !r->writing_out)
		send_refusal(r);
}

/* ---- client -> libmicrohttpd ---- */

static void on_in_written(uv_write_t *w, int status)
{
	struct relay *r = w->data;
	r->writing_in = false;
	if (r->closing)
		return;
	if (status < 0) {
		/* libmicrohttpd closed its end (it refused the request and
		 * does not read its body): what the client sends is dropped. */
		r->mhd_gone = true;
		r->in_len = 0;
	} else {
		memmove(r->in, r->in + r->in_pass, r->in_len - r->in_pass);
		r->in_len -= r->in_pass;
	}
	r->in_pass = 0;
	if (r->refused || r->client_eof) {
		finish_mhd(r);
		return;
	}
	pump_in(r);
	if (!r->writing_in && !r->refused && !r->closing &&
	    uv_read_start((uv_stream_t *)&r->client, alloc_in, on_client_read))
		close_relay(r);
}

/* Pass on what the scanner lets through; refuse what it does not. */
static void pump_in(struct relay *r)
{
	if (r->writing_in || r->refused || r->closing)
		return;
	if (r->mhd_gone || r->t_linger > 0) {
		r->in_len = 0;
		return;
	}
	size_t pass = 0;
	struct api_error e = { 0 };
	while (pass < r->in_len) {
		long n = framing_scan(&r->framing, r->in + pass, r->in_len - pass, &e);
		if (n < 0) {
			r->in_len = pass;   /* the refused bytes go nowhere */
			break;
		}
		if (n == 0)
			break;
		pass += (size_t)n;
	}
	if (pass) {
		r->in_pass = pass;
		r->writing_in = true;
		r->w_in.data = r;
		uv_buf_t buf = uv_buf_init(r->in, (unsigned)pass);
		uv_read_stop((uv_stream_t *)&r->client);
		if (uv_write(&r->w_in, (uv_stream_t *)&r->mhd, &buf, 1, on_in_written)) {
			close_relay(r);
			return;
		}
	}
	if (r->framing.state == FRAMING_FAILED)
		refuse(r, &e);
}

static void alloc_in(uv_handle_t *h, size_t want, uv_buf_t *buf)
{
	struct relay *r = of_handle(h);
	(void)want;
	/* Lingering: read into the whole buffer and drop it. */
	if (r->t_linger > 0 || r->mhd_gone)
		r->in_len = 0;
	*buf = uv_buf_init(r->in + r->in_len, (unsigned)(r->front->head_max - r->in_len));
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct relay *r = of_handle((uv_handle_t *)s);
	(void)buf;
	if (n == 0 || r->closing)
		return;
	if (n < 0) {
		r->client_eof = true;
		uv_read_stop(s);
		/* Reset, or done with it (lingering): close now. */
		if (n != UV_EOF || r->t_linger > 0) {
			close_relay(r);
			return;
		}
		if (!r->writing_in)
			finish_mhd(r);
		return;
	}
	r->in_len += (size_t)n;
	pump_in(r);
}

/* ---- libmicrohttpd -> client ---- */

static void alloc_out(uv_handle_t *h, size_t want, uv_buf_t *buf)
{
	struct relay *r = of_handle(h);
	(void)want;
	*buf = uv_buf_init(r->out, OUT_CAP);
}

/* libmicrohttpd's side has ended and all it wrote has gone out: the
 * refusal, if a request was refused, then the connection's end. */
static void end_client(struct relay *r)
{
	if (r->refused)
		send_refusal(r);
	else
		finish_client(r);
}

static void on_out_written(uv_write_t *w, int status)
{
	struct relay *r = w->data;
	r->writing_out = false;
	if (r->closing)
		return;
	if (status < 0) {
		close_relay(r);
		return;
	}
	if (r->mhd_eof) {
		end_client(r);
		return;
	}
	if (uv_read_start((uv_stream_t *)&r->mhd, alloc_out, on_mhd_read))
		close_relay(r);
}

static void on_mhd_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct relay *r = of_handle((uv_handle_t *)s);
	(void)buf;
	if (n == 0 || r->closing)
		return;
	if (n < 0) {
		/* libmicrohttpd closed the connection: the client gets what was
		 * written, then (after a refusal) the refusal, then the end. */
		r->mhd_eof = true;
		uv_read_stop(s);
		if (!r->writing_out)
			end_client(r);
		return;
	}
	uv_read_stop(s);
	r->writing_out = true;
	r->w_out.data = r;
	uv_buf_t b = uv_buf_init(r->out, (unsigned)n);
	if (uv_write(&r->w_out, (uv_stream_t *)&r->client, &b, 1, on_out_written))
		close_relay(r);
}

/* ---- accepting ---- */

/* A connection refused at its accept (no room, no memory for its relay):
 * accepted into the spare handle, answered 503 (500 for memory) and closed
 * at once.  libuv holds an
 * accepted connection until uv_accept takes it and watches the listener no
 * more meanwhile, so a connection that is not taken would stop every later
 * accept; while the spare is still closing, the next refusal waits for it
 * (the listener paused) instead of allocating. */
static void reject_pending(struct front *f);

static void on_spare_closed(uv_handle_t *h)
{
	struct front *f = h->data;
	f->spare_busy = false;
	if (f->reject_waiting) {
		f->reject_waiting = false;
		reject_pending(f);
	}
}

static void reject_pending(struct front *f)
{
	if (f->spare_busy) {
		f->reject_waiting = true;
		return;
	}
	if (!f->listening)
		return;
	uv_tcp_init(&f->loop, &f->spare);
	f->spare.data = f;
	f->spare_busy = true;
	if (uv_accept((uv_stream_t *)&f->listener, (uv_stream_t *)&f->spare) == 0) {
		char *a = f->reject_oom ? f->oom_answer : f->busy_answer;
		uv_buf_t b = uv_buf_init(a, (unsigned)strlen(a));
		uv_try_write((uv_stream_t *)&f->spare, &b, 1);
	}
	uv_close((uv_handle_t *)&f->spare, on_spare_closed);
}

static void refuse_accept(struct front *f, bool oom)
{
	log_client(LOG_WARN, "http: %s; a new connection answered %d and closed",
		   oom ? "out of memory for a relay" : "connection limit reached", oom ? 500 : 503);
	server_count_status(f->srv, oom ? 500 : 503);
	f->reject_oom = oom;
	reject_pending(f);
}

static void on_accept(uv_stream_t *server, int status)
{
	struct front *f = server->data;
	if (status < 0) {
		log_client(LOG_WARN, "http: accept: %s", uv_strerror(status));
		return;
	}
	if (f->n_relays >= f->max_relays) {
		refuse_accept(f, false);
		return;
	}
	struct relay *r = calloc(1, sizeof(*r) + f->head_max + OUT_CAP);
	if (!r) {
		refuse_accept(f, true);
		return;
	}
	f->n_relays++;
	r->front = f;
	r->in = (char *)(r + 1);
	r->out = r->in + f->head_max;
	framing_init(&r->framing, f->head_max);
	uv_tcp_init(&f->loop, &r->client);
	uv_pipe_init(&f->loop, &r->mhd, 0);
	r->client.data = r->mhd.data = r;
	r->open_handles = 2;
	dlist_push(&f->relays, &r->link);
	if (uv_accept(server, (uv_stream_t *)&r->client)) {
		close_relay(r);
		return;
	}
	uv_tcp_nodelay(&r->client, 1);
	struct sockaddr_storage peer;
	int plen = sizeof(peer);
	memset(&peer, 0, sizeof(peer));
	if (uv_tcp_getpeername(&r->client, (struct sockaddr *)&peer, &plen) == 0) {
		if (peer.ss_family == AF_INET)
			uv_ip4_name((struct sockaddr_in *)&peer, r->peer, sizeof(r->peer));
		else if (peer.ss_family == AF_INET6)
			uv_ip6_name((struct sockaddr_in6 *)&peer, r->peer, sizeof(r->peer));
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv)) {
		log_client(LOG_WARN, "http: socketpair: %s", strerror(errno));
		close_relay(r);
		return;
	}
	if (uv_pipe_open(&r->mhd, sv[0])) {
		close(sv[0]);
		close(sv[1]);
		close_relay(r);
		return;
	}
	/* libmicrohttpd closes sv[1] itself when it cannot take it (over its
	 * hard limits).  Where it says so at once, the client gets the cap's
	 * 503 with Retry-After, not a bare close a load balancer would count
	 * as a failure; where its worker refuses later, our end reads EOF and
	 * the client is closed. */
	if (MHD_add_connection(f->mhd, sv[1], (const struct sockaddr *)&peer, (socklen_t)plen) != MHD_YES) {
		log_client(LOG_WARN, "http: %s: connection limit reached (libmicrohttpd's); answered 503 and closed",
			   r->peer);
		server_count_status(f->srv, 503);
		uv_buf_t b = uv_buf_init(f->busy_answer, (unsigned)strlen(f->busy_answer));
		uv_try_write((uv_stream_t *)&r->client, &b, 1);
		close_relay(r);
		return;
	}
	if (uv_read_start((uv_stream_t *)&r->client, alloc_in, on_client_read) ||
	    uv_read_start((uv_stream_t *)&r->mhd, alloc_out, on_mhd_read))
		close_relay(r);
}

/* Once a second: close the connections done lingering. */
static void on_tick(uv_timer_t *t)
{
	struct front *f = t->data;
	double now = smk_now();
	DLIST_FOR_EACH(struct relay, r, &f->relays, link)
		if (r->t_linger > 0 && now > r->t_linger)
			close_relay(r);
}

static void on_wake(uv_async_t *a)
{
	struct front *f = a->data;
	int req = atomic_load(&f->request);
	if (req >= 1 && f->listening) {
		f->listening = false;
		uv_close((uv_handle_t *)&f->listener, NULL);
		atomic_store(&f->accepting, false);
	}
	if (req >= 2) {
		DLIST_FOR_EACH(struct relay, r, &f->relays, link)
			close_relay(r);
		uv_close((uv_handle_t *)&f->tick, NULL);
		uv_close((uv_handle_t *)&f->wake, NULL);
	}
}

static void *front_main(void *arg)
{
	struct front *f = arg;
	uv_run(&f->loop, UV_RUN_DEFAULT);
	return NULL;
}

/* ---- the interface ---- */

struct front *front_open(struct server *s, const struct addrinfo *ai, size_t head_max, int max_conns,
			 int *port, struct smk_err *err)
{
	struct front *f = calloc(1, sizeof(*f));
	if (!f) {
		smk_fail(err, -ENOMEM, "out of memory");
		return NULL;
	}
	f->srv = s;
	f->head_max = head_max < 256 ? 256 : head_max;
	f->max_relays = max_conns;
	make_answer(f->oom_answer, sizeof(f->oom_answer), "500 Internal Server Error", "", oom_body);
	make_answer(f->busy_answer, sizeof(f->busy_answer), "503 Service Unavailable", "Retry-After: 1\r\n",
		    busy_body);
	if (uv_loop_init(&f->loop)) {
		free(f);
		smk_fail(err, -ENOMEM, "cannot start the HTTP event loop");
		return NULL;
	}
	uv_tcp_init(&f->loop, &f->listener);
	f->listener.data = f;
	int rc = UV_EINVAL;
	for (const struct addrinfo *a = ai; a && rc; a = a->ai_next)
		if (a->ai_family == AF_INET || a->ai_family == AF_INET6)
			rc = uv_tcp_bind(&f->listener, a->ai_addr, a->ai_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
	if (!rc)
		rc = uv_listen((uv_stream_t *)&f->listener, 511, on_accept);
	if (rc) {
		uv_close((uv_handle_t *)&f->listener, NULL);
		uv_run(&f->loop, UV_RUN_DEFAULT);
		uv_loop_close(&f->loop);
		free(f);
		smk_fail(err, -EADDRINUSE, "%s", uv_strerror(rc));
		return NULL;
	}
	f->listening = true;
	atomic_store(&f->accepting, true);
	struct sockaddr_storage sa;
	int len = sizeof(sa);
	*port = 0;
	if (uv_tcp_getsockname(&f->listener, (struct sockaddr *)&sa, &len) == 0)
		*port = sa.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&sa)->sin6_port) :
						   ntohs(((struct sockaddr_in *)&sa)->sin_port);
	uv_async_init(&f->loop, &f->wake, on_wake);
	f->wake.data = f;
	uv_timer_init(&f->loop, &f->tick);
	f->tick.data = f;
	uv_timer_start(&f->tick, on_tick, 1000, 1000);
	return f;
}

int front_start(struct front *f, struct MHD_Daemon *mhd, struct smk_err *err)
{
	f->mhd = mhd;
	if (pthread_create(&f->thread, NULL, front_main, f))
		return smk_fail(err, -EAGAIN, "cannot start the HTTP accept thread");
	f->started = true;
	return 0;
}

/* Returns once no connection can be handed to libmicrohttpd any more: the
 * caller stops it next. */
void front_stop_accepting(struct front *f)
{
	if (!f)
		return;
	int none = 0;
	atomic_compare_exchange_strong(&f->request, &none, 1);
	if (!f->started) {
		atomic_store(&f->accepting, false);
		return;
	}
	uv_async_send(&f->wake);
	while (atomic_load(&f->accepting))
		usleep(1000);
}

void front_close(struct front *f)
{
	if (!f)
		return;
	atomic_store(&f->request, 2);
	if (f->started) {
		uv_async_send(&f->wake);
		pthread_join(f->thread, NULL);
	} else {
		on_wake(&f->wake);
		uv_run(&f->loop, UV_RUN_DEFAULT);
	}
	uv_loop_close(&f->loop);
	free(f);
}
