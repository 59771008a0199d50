/* fuzz_sse.c - the client library's server-sent events parser
 * (client/sse.c).  Input: byte 0 picks the bound on a line/event and the
 * chunking; the rest is the stream, fed in chunks (a CR and its LF may be
 * split).  Events are checked as sse.h promises: NUL-terminated at len,
 * len within the bound. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

static size_t max_bytes;

static int on_event(const char *data, size_t len, void *user)
{
	if (len > max_bytes || data[len] != 0)
		abort();
	/* Stop on an event whose data is "stop": the parser returns our code. */
	return len == 4 && !memcmp(data, "stop", 4) ? -1000 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const size_t bounds[] = { 1, 7, 64, 4096 };
	max_bytes = bounds[data[0] & 3];
	size_t chunk = (size_t)(data[0] >> 2) + 1;
	struct sse_parser p;
	sse_init(&p, max_bytes);
	const char *s = (const char *)data + 1;
	size_t len = size - 1;
	for (size_t i = 0; i < len; i += chunk) {
		size_t k = len - i < chunk ? len - i : chunk;
		int rc = sse_feed(&p, s + i, k, on_event, NULL);
		if (rc == -1000 || (rc && p.error))
			break;
		if (rc)
			abort();   /* only fn's value or the parser's own errors */
	}
	sse_deinit(&p);
	return 0;
}
