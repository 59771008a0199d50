/* framing.h - the HTTP/1.1 framing of a client's byte stream, checked
 * before libmicrohttpd sees a byte of it (RFC 9112).  Internal to http/.
 *
 * Why here and not in libmicrohttpd's callbacks: libmicrohttpd 0.9.75
 * answers what it cannot parse itself (a malformed Content-Length, a bad
 * chunk, a request line or head too long for its memory pool, an unknown
 * HTTP version, a missing Host) with HTML pages without a Content-Type, a
 * malformed Content-Length with two status lines for one request, and it
 * accepts framing that RFC 9112 says to reject (two different
 * Content-Length headers, a space before a field's colon, Content-Length
 * beside Transfer-Encoding).  front.c relays every connection through this
 * scanner: what passes is handed on unchanged; what does not is answered
 * with the API's JSON error and the connection closed, so nothing after a
 * refused head is ever read as a request.
 *
 * The scanner is incremental and allocates nothing: it is given the bytes
 * not yet passed on, starting at a boundary it knows (a request's head, its
 * body, a chunk line...), and says how many of them may be passed on.
 *
 * Refused, with the status:
 *  - 400: a request line that is not METHOD SP TARGET SP HTTP/x.y (a
 *    method of token characters, a target of visible ASCII); a target
 *    with an escaped NUL (%00) or, in its path, another escaped control
 *    byte; a line ending in a bare LF or a CR alone; a field line without
 *    a colon, with a space or control byte in its name (RFC 9112 5.1), a
 *    NUL or control byte in its value, or folded (obs-fold, 5.2); HTTP/1.1
 *    without Host or with two; a Content-Length that is not one decimal
 *    number, or two that differ (6.3); Content-Length with
 *    Transfer-Encoding; Transfer-Encoding in HTTP/1.0; a chunk line that is
 *    not hex digits (an extension after ';' is allowed), a chunk not
 *    followed by CRLF, a bad trailer field.
 *  - 414: a request line longer than the head limit, or more than
 *    FRAMING_MAX_ARGS query arguments (libmicrohttpd stores each in the
 *    connection's memory pool).
 *  - 431: a head (request line and fields) longer than the head limit, or
 *    more than FRAMING_MAX_FIELDS fields.
 *  - 501: a Transfer-Encoding other than exactly "chunked".
 *  - 505: an HTTP version other than 1.0 and 1.1.
 * Empty lines before a request line are passed on (RFC 9112 2.2: a server
 * ignores them; libmicrohttpd does). */
#ifndef SMK_HTTP_FRAMING_H
#define SMK_HTTP_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/api.h"

enum { FRAMING_MAX_FIELDS = 100, FRAMING_MAX_ARGS = 64, FRAMING_MAX_CHUNK_LINE = 1024 };

enum framing_state {
	FRAMING_HEAD,        /* before a request (or its leading empty lines) */
	FRAMING_BODY,        /* `left` bytes of a Content-Length body */
	FRAMING_CHUNK_LINE,  /* a chunk-size line */
	FRAMING_CHUNK_DATA,  /* `left` bytes of a chunk */
	FRAMING_CHUNK_END,   /* the CRLF after a chunk */
	FRAMING_TRAILERS,    /* trailer fields up to an empty line */
	FRAMING_FAILED,
};

struct framing {
	enum framing_state state;
	uint64_t left;
	size_t head_max;     /* the longest head (and trailer section) taken */
	int requests;        /* heads passed so far */
	/* Where the section being gathered stands (framing.c next_line). */
	size_t line, scan;
	int fields;
};

/* head_max: see framing_scan; at least 256. */
void framing_init(struct framing *f, size_t head_max);

/* buf[0..len): the bytes received and not yet passed on.  Returns how many
 * of them may be passed on now (a whole head, a chunk line, body bytes: the
 * caller passes them and calls again with the rest), 0 when more bytes are
 * needed to decide, or -1 with e filled (the state is then FRAMING_FAILED
 * and stays so).  A head or trailer section still incomplete at head_max
 * bytes is refused, so a caller whose buffer holds head_max bytes never
 * waits for more than it can hold.  Between calls that return 0 the caller
 * only appends: buf starts at the same byte (it may have moved). */
long framing_scan(struct framing *f, const char *buf, size_t len, struct api_error *e);

#endif
