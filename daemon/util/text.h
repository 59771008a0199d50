/* text.h - untrusted bytes made fit for a message.
 *
 * Names from model files, JSON headers and requests end up in error
 * messages and logs; a hostile one must not carry escape sequences into a
 * terminal, nor make a message unbounded. */
#ifndef SMK_UTIL_TEXT_H
#define SMK_UTIL_TEXT_H

#include <stddef.h>

/* Copy len bytes (not necessarily NUL-terminated; NUL bytes are data) into
 * buf, cap bytes, as a NUL-terminated string for a message, and return buf:
 *   - printable ASCII (0x20..0x7e) is copied;
 *   - control characters (below 0x20, 0x7f, and U+0080..U+009F) become '?';
 *   - a well-formed UTF-8 sequence of any other character is copied whole;
 *     every byte that is not part of one becomes '?' (so the result is
 *     always well-formed UTF-8);
 *   - at most cap - 4 bytes are copied, cut only between characters; when
 *     the input does not fit, "..." marks the cut.
 * cap must be at least 4 (cap 1..3 gives "", cap 0 writes nothing and
 * returns a static ""). */
const char *smk_printable(char *buf, size_t cap, const void *bytes, size_t len);

/* Where the exact bytes matter (a token's text, a JSON key): copy the
 * first max_in bytes of bytes[0..len) into buf (cap bytes) with every byte
 * that could not be shown as itself written as \xNN: control bytes and
 * 0x7f always; with SMK_ESCAPE_ASCII (untrusted bytes that need not be
 * UTF-8) also every byte from 0x80 and the backslash, so the escapes are
 * unambiguous; without it bytes from 0x80 and backslashes are copied (the
 * caller vouches for valid UTF-8 and wants it readable, e.g. a regex
 * jansson decoded).  "..." ends a cut input; output stops early rather
 * than overflow cap.  Returns buf. */
enum { SMK_ESCAPE_ASCII = 1 };
const char *smk_escape(char *buf, size_t cap, const void *bytes, size_t len, size_t max_in,
		       int flags);

#endif
