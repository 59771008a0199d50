/* oget.h - ranged GETs over libcurl, checked and retried.
 *
 * Every read asks for bytes [off, off+n) of one object and accepts only a
 * 206 whose Content-Range is exactly "bytes off-(off+n-1)/SIZE" (SIZE the
 * object's size as first seen), whose Content-Length (when sent) is n, and
 * whose body is exactly n bytes; with If-Match on the ETag first seen, so an
 * object replaced under a running daemon fails (412) instead of mixing two
 * versions' bytes.  The body goes straight into the caller's buffer; the
 * buffer counts as filled only when 0 is returned.
 *
 * Retried with exponential backoff (0.1 s doubling, at most 5 s between
 * tries, SMOKE_OBJSTORE_RETRIES tries in all, default 6): connection
 * failures, timeouts, a stalled transfer (under 1 byte/s for
 * SMOKE_OBJSTORE_STALL_S seconds, default 20), HTTP 429, 500, 502, 503
 * (S3's SlowDown), 504, and a body or header of the wrong length.  Other
 * answers (403, 404, 412, 416, ...) and a certificate that does not verify
 * fail at once.  Errors name the URL as
 * the user gave it, the range, the status and S3's error code (from the
 * XML body); never a credential.
 *
 * s3:// requests are signed by libcurl itself (CURLOPT_AWS_SIGV4, service
 * s3, the region of the credentials), with x-amz-security-token for a
 * session token.  Thread-safe: each call takes a handle from a small pool
 * (connections are kept alive between calls).
 */
#ifndef SMK_OBJSTORE_OGET_H
#define SMK_OBJSTORE_OGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objstore/oconf.h"
#include "util/err.h"

struct oget;

/* What a request reads: the HTTP URL, the URL to name in messages, and
 * whether to sign it. */
struct oget_target {
	const char *url;
	const char *shown;
	bool sign;
};

/* A client.  c is copied.  *out owned by the caller (oget_free). */
int oget_new(struct oget **out, const struct ocreds *c, struct smk_err *err);
void oget_free(struct oget *g);

/* Size and ETag (etag_cap bytes, "" if the server sends none) of an
 * object, by a GET of its first byte: also proves that Range is honoured.
 * -ENOENT for 404 (a missing key or bucket), -EACCES for 401/403. */
int oget_stat(struct oget *g, const struct oget_target *t, uint64_t *size, char *etag,
	      size_t etag_cap, struct smk_err *err);

/* Bytes [off, off+n) of an object of `size` bytes (from oget_stat) with
 * ETag etag ("" or NULL: no If-Match) into buf. */
int oget_range(struct oget *g, const struct oget_target *t, uint64_t size, const char *etag,
	       uint64_t off, uint64_t n, void *buf, struct smk_err *err);

/* Counters since oget_new (any thread). */
struct oget_stats {
	uint64_t requests, retries, failures, bytes;
};
void oget_get_stats(struct oget *g, struct oget_stats *st);

#endif
