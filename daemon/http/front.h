/* front.h - the listening socket and a relay in front of libmicrohttpd.
 * Internal to http/.
 *
 * libmicrohttpd 0.9.75 (Debian 12's) answers the requests it cannot parse
 * itself, with HTML pages, and accepts framing RFC 9112 says to reject
 * (framing.h says which).  So the daemon accepts its connections itself:
 * each client's bytes go through framing_scan and on to libmicrohttpd over a
 * socketpair (MHD_add_connection, with the client's address, so the
 * per-address limits and the logs see the client), and libmicrohttpd's
 * bytes come back unchanged.  A request whose framing is refused is answered
 * here with the API's JSON error (after the answers to the requests before
 * it on the connection) and the connection closed: libmicrohttpd never sees
 * a byte of it.
 *
 * One thread runs the relay (a libuv loop); each connection holds a buffer
 * of head_max bytes for the client's unchecked bytes and one of 16 KiB for
 * libmicrohttpd's, allocated at its accept.  Each direction reads only when
 * its last write is done, so a slow reader on one side stops the other. */
#ifndef SMK_HTTP_FRONT_H
#define SMK_HTTP_FRONT_H

#include <netdb.h>
#include <stddef.h>

#include "util/err.h"

struct server;
struct MHD_Daemon;
struct front;

/* Bind and listen on ai (the first address that binds); head_max: the
 * longest request head taken (framing.h); max_conns: connections relayed
 * at once (one more is closed at its accept, which bounds the memory the
 * relays hold).
 * The port bound is in *port.  Nothing is accepted before front_start. */
struct front *front_open(struct server *s, const struct addrinfo *ai, size_t head_max, int max_conns,
			 int *port, struct smk_err *err);

/* Start relaying connections to mhd (started with MHD_USE_NO_LISTEN_SOCKET). */
int front_start(struct front *f, struct MHD_Daemon *mhd, struct smk_err *err);

/* Stop accepting (the listening socket is closed); connections go on.
 * Returns once the front hands libmicrohttpd no new connection. */
void front_stop_accepting(struct front *f);

/* After MHD_stop_daemon: close every connection, stop the thread, free f. */
void front_close(struct front *f);

#endif
