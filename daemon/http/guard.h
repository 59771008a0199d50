/* guard.h - checks on a request's head, made before its body is read: the
 * Host and Origin headers (DNS rebinding and cross-site requests from a
 * browser) and the media type of a body.  The framing and the bytes of the
 * head were checked before libmicrohttpd saw them (framing.h).  Internal to
 * http/.
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

/* Is `host` (a Host header, or an Origin's authority, port included)
 * allowed by cfg?  (Rules above.) */
bool guard_host_allowed(const struct config *cfg, const char *host, size_t len);

/* Host and Origin (403), and for a route that takes a JSON body the media
 * type (415: application/json or none; text/plain and form types are what
 * a web page can send without asking).  Returns 0, or -1 with e filled. */
int guard_access(struct MHD_Connection *c, const struct config *cfg, bool json_body,
		 struct api_error *e);

#endif
