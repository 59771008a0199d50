/* fuzz_framing.c - the HTTP/1.1 framing scanner in front of libmicrohttpd
 * (daemon/http/framing.c).  Input: byte 0 picks how the stream is cut
 * into reads and the head limit; the rest is what a client sends.  Fed as
 * front.c feeds it (passing what the scanner lets through, keeping the rest
 * in a buffer of head_max bytes), once whole and once in the chosen reads:
 * both must pass the same bytes and end in the same state and refusal, a
 * refusal must carry a status and a message, and a buffer never overflows
 * (the scanner refuses a head before it outgrows head_max). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/framing.h"

struct run {
	size_t passed;
	int status, requests;
	enum framing_state state;
};

static struct run feed(const char *in, size_t len, size_t step, size_t head_max, char *buf)
{
	struct framing f;
	framing_init(&f, head_max);
	struct run o = { 0 };
	size_t have = 0, fed = 0;
	for (;;) {
		size_t n = len - fed < step ? len - fed : step;
		if (n > head_max - have)
			n = head_max - have;
		memcpy(buf + have, in + fed, n);
		have += n;
		fed += n;
		size_t pass = 0;
		long r;
		struct api_error e = { 0 };
		while ((r = framing_scan(&f, buf + pass, have - pass, &e)) > 0) {
			pass += (size_t)r;
			if (pass > have)
				abort();
		}
		o.passed += pass;
		memmove(buf, buf + pass, have - pass);
		have -= pass;
		if (r < 0) {
			if (e.status < 400 || e.status > 505 || !e.msg[0] || f.state != FRAMING_FAILED)
				abort();
			o.status = e.status;
			break;
		}
		/* A full buffer the scanner still waits on would stall a relay. */
		if (have == head_max)
			abort();
		if (fed == len && (!n || !pass))
			break;
	}
	o.requests = f.requests;
	o.state = f.state;
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const size_t steps[] = { 1, 2, 3, 7, 64, 1000 };
	size_t step = steps[data[0] % 6];
	size_t head_max = (data[0] & 0x80) ? 256 : 4096;
	static char buf[4096];
	const char *in = (const char *)data + 1;
	size_t len = size - 1;
	struct run whole = feed(in, len, len ? len : 1, head_max, buf);
	struct run cut = feed(in, len, step, head_max, buf);
	if (whole.passed != cut.passed || whole.status != cut.status || whole.requests != cut.requests ||
	    whole.state != cut.state)
		abort();
	return 0;
}
