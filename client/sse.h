/* sse.h - an incremental parser of server-sent events (text/event-stream),
 * as the daemon sends them for "stream": true.
 *
 * Framing (WHATWG HTML, "Server-sent events", the parts a client of smoked
 * needs): the stream is UTF-8 text in lines ended by CRLF, LF or CR.  A line
 * "field: value" (one optional space after the colon) adds to the event
 * being built; a line starting with ':' is a comment; an empty line
 * dispatches the event.  The data of an event is its "data" lines joined
 * with LF.  Other fields (event, id, retry) are accepted and ignored: smoked
 * sends only data.  Bytes may arrive split anywhere, including between the
 * CR and LF of a line end, so the parser keeps the partial line between
 * calls.  An event without a closing empty line when the stream ends is
 * dropped, as the standard says.
 */
#ifndef SMOKE_SSE_H
#define SMOKE_SSE_H

#include <stdbool.h>
#include <stddef.h>

/* Receives one event's data (NUL-terminated, len bytes, valid during the
 * call).  Returns 0 to go on or a negative code that sse_feed returns. */
typedef int (*sse_event_fn)(const char *data, size_t len, void *user);

struct sse_parser {
	char *line;            /* the partial line */
	size_t line_len, line_cap;
	char *data;            /* the data lines of the event being built */
	size_t data_len, data_cap;
	bool has_data;         /* a data line was seen (an event with empty data is still one) */
	bool after_cr;         /* the last byte was a CR: a following LF ends nothing */
	size_t max;            /* bound on a line and on an event's data */
	int error;             /* -ENOMEM or -E2BIG when the parser itself failed; 0 otherwise */
};

/* max bounds the size of one line and of one event (bytes); the buffers
 * grow up to it and are kept between events, so a steady stream does not
 * allocate. */
void sse_init(struct sse_parser *p, size_t max);
void sse_deinit(struct sse_parser *p);

/* Feed n bytes.  Returns 0, the first non-zero value of fn (parsing stops
 * there), -ENOMEM, or -E2BIG when a line or event exceeds max.  The last
 * two also set p->error, which tells them from a value of fn. */
int sse_feed(struct sse_parser *p, const char *bytes, size_t n, sse_event_fn fn, void *user);

#endif
