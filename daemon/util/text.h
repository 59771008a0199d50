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

#endif
