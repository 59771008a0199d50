/* guard.h - checks on a request's head, made before its body is read: the
 * framing (RFC 9112), the Host and Origin headers (DNS rebinding and
 * cross-site requests from a browser), the media type of a body, header
 * bytes.  Internal to http/.
 *
 * libmicrohttpd 0.9.75 accepts framing that RFC 9112 says to reject (two
 * different Content-Length headers: the first wins; Content-Length beside
 * Transfer-Encoding; a field name with a space before the colon is kept as
 * a different field) and waits for a body it cannot frame (Transfer-Encoding
 * other than exactly "chunked").  It does hand such a request's headers to
 * the access handler before it reads the body, so guard_head refuses them
 * there, and the refusal closes the connection (server.c adds
 * "Connection: close"): nothing after a refused head is ever read as a
 * request.
 *
 * Host allow-list (server.allowed_hosts, docs/security.md): a
 * comma-separated list of host names or address literals ("localhost,
 * 127.0.0.1, [::1]"), compared case-insensitively without the port; "*"
 * accepts any.  Empty (the default): the names of the listen address -
 * server.host itself, and for a loopback address "localhost", "127.0.0.1"
 * and "[::1]" - or any host when server.host is a wildcard (0.0.0.0, ::),
 * since a server reachable from the network is reached by names it cannot
 * know.  A request without Host (HTTP/1.0) passes; a browser always sends
 * one.  Origin, when present (browsers send it on cross-origin requests and
 * on every POST), must name an allowed host too; "null" never passes. */
#ifndef SMK_HTTP_GUARD_H
#define SMK_HTTP_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "http/api.h"

struct MHD_Connection;

/* Raw request-target facts that libmicrohttpd's decoding hides: seen by the
 * URI callback before the target is unescaped and split. */
struct guard_uri {
	bool nul;                 /* %00 in the target (decoded, it would cut the path short) */
	bool ctl;                 /* another escaped control byte (%01..%1f, %7f) in the path */
	int n_args;               /* query arguments */
};

/* The most query arguments a request may carry (none of the endpoints
 * takes any); more: 414.  libmicrohttpd 0.9.75 stores each in the
 * connection's memory pool and, once the pool is full, answers nothing
 * until the idle timeout. */
enum { GUARD_MAX_ARGS = 64 };

/* Inspect a raw request target (the URI callback's, not yet unescaped) and,
 * when it carries more than GUARD_MAX_ARGS query arguments, neutralise them
 * in place (every '&' of the query becomes '_', so libmicrohttpd stores one
 * argument): the request is refused anyway.  uri is libmicrohttpd's own
 * buffer, writable in 0.9.75 (documented in docs/security.md). */
void guard_uri_scan(char *uri, struct guard_uri *out);

/* Is `host` (a Host header, or an Origin's authority, port included)
 * allowed by cfg?  (Rules above.) */
bool guard_host_allowed(const struct config *cfg, const char *host, size_t len);

/* The framing and bytes of every request's head, before routing: 400
 * (Content-Length, Transfer-Encoding beside it, a field name with a space
 * or control byte, a NUL in a field value or the target), 501 (a transfer
 * coding other than chunked), 414 (query arguments).  Returns 0, or -1 with
 * e filled. */
int guard_framing(struct MHD_Connection *c, const struct guard_uri *u, struct api_error *e);

/* Host and Origin (403), and for a route that takes a JSON body the media
 * type (415: application/json or none; text/plain and form types are what
 * a web page can send without asking).  Returns 0, or -1 with e filled. */
int guard_access(struct MHD_Connection *c, const struct config *cfg, bool json_body,
		 struct api_error *e);

#endif
