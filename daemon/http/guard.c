/* guard.c - checks on a request's head before its body is read (guard.h). */
#include "http/guard.h"

#include <ctype.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define INVALID "invalid_request_error"

/* ---- the request target ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

void guard_uri_scan(char *uri, struct guard_uri *out)
{
	memset(out, 0, sizeof(*out));
	char *q = strchr(uri, '?');
	for (char *p = uri; *p; p++) {
		if (*p != '%' || hexval(p[1]) < 0 || hexval(p[2]) < 0)
			continue;
		int v = hexval(p[1]) * 16 + hexval(p[2]);
		if (v == 0)
			out->nul = true;
		else if ((v < 0x20 || v == 0x7f) && (!q || p < q))
			out->ctl = true;
	}
	if (!q)
		return;
	/* libmicrohttpd counts "a&&b" as arguments a, "", b. */
	int n = 1;
	for (char *p = q + 1; *p; p++)
		n += *p == '&';
	out->n_args = n;
	if (n > GUARD_MAX_ARGS)
		for (char *p = q + 1; *p; p++)
			if (*p == '&')
				*p = '_';
}

/* ---- Host and Origin ---- */

/* The host part of an authority ("name:port", "[v6]:port"): [*h, *h + *n). */
static void authority_host(const char **h, size_t *n)
{
	const char *s = *h;
	size_t len = *n;
	while (len && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len && s[0] == '[') {
		const char *end = memchr(s, ']', len);
		len = end ? (size_t)(end - s) + 1 : len;
	} else {
		const char *colon = memchr(s, ':', len);
		if (colon)
			len = (size_t)(colon - s);
	}
	/* "localhost." names the same host as "localhost". */
	if (len > 1 && s[len - 1] == '.')
		len--;
	*h = s;
	*n = len;
}

static bool name_eq(const char *a, size_t na, const char *b)
{
	size_t nb = strlen(b);
	if (na == nb && !strncasecmp(a, b, na))
		return true;
	/* "::1" in the configuration against "[::1]" in a header. */
	return na == nb + 2 && a[0] == '[' && a[na - 1] == ']' && !strncasecmp(a + 1, b, nb);
}

static bool is_wildcard(const char *h)
{
	return !h[0] || !strcmp(h, "0.0.0.0") || !strcmp(h, "::") || !strcmp(h, "[::]");
}

static bool is_loopback(const char *h)
{
	return !strncmp(h, "127.", 4) || !strcmp(h, "::1") || !strcmp(h, "[::1]") ||
	       !strcasecmp(h, "localhost");
}

bool guard_host_allowed(const struct config *cfg, const char *host, size_t len)
{
	const char *h = host;
	size_t n = len;
	authority_host(&h, &n);
	if (!n)
		return false;
	const char *list = cfg->server.allowed_hosts;
	if (!list[0]) {
		const char *lh = cfg->server.host;
		if (is_wildcard(lh) || name_eq(h, n, lh))
			return true;
		return is_loopback(lh) && (name_eq(h, n, "localhost") || name_eq(h, n, "127.0.0.1") ||
					   name_eq(h, n, "::1"));
	}
	for (const char *p = list; *p;) {
		while (*p == ',' || *p == ' ')
			p++;
		const char *end = p;
		while (*end && *end != ',')
			end++;
		size_t m = (size_t)(end - p);
		while (m && p[m - 1] == ' ')
			m--;
		if (m == 1 && *p == '*')
			return true;
		char item[256];
		if (m && m < sizeof(item)) {
			memcpy(item, p, m);
			item[m] = 0;
			if (name_eq(h, n, item))
				return true;
		}
		p = end;
	}
	return false;
}

/* ---- the head ---- */

struct head_scan {
	int n_cl, n_te;
	char cl[32];
	bool cl_bad, cl_differ;
	char te[64];
	char bad_name[48];        /* the first field name with a space or control byte */
	char nul_name[48];        /* the first field whose value holds a NUL */
};

/* libmicrohttpd 0.9.75 ends a field value at its first NUL byte (its
 * length is the strlen) and hides the rest: "Bearer KEY\0junk" reads as
 * "Bearer KEY".  It terminates each header line in its own read buffer by
 * turning the CR and LF into NULs, so a value that was cut short is
 * followed by its NUL and then more bytes of the same line instead of the
 * NUL that was its CR.  (A line ending in a bare LF looks the same and is
 * refused with it; RFC 9112 2.2 lets a server refuse those.)  Later
 * releases keep the whole value and give its length; there memchr finds
 * the NUL. */
static bool value_cut_at_nul(const char *v, size_t n)
{
#if MHD_VERSION < 0x00097700
	if (v[n] != 0)
		return false;
	unsigned char next = (unsigned char)v[n + 1];
	return next != 0 && next != ' ' && next != '\t';
#else
	(void)v;
	(void)n;
	return false;
#endif
}

static enum MHD_Result scan_field(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
				  const char *value, size_t value_size)
{
	struct head_scan *h = cls;
	(void)kind;
	if (!key)
		return MHD_YES;
	for (size_t i = 0; i < key_size; i++) {
		unsigned char ch = (unsigned char)key[i];
		if (ch <= ' ' || ch == 0x7f || ch == ':') {
			if (!h->bad_name[0])
				snprintf(h->bad_name, sizeof(h->bad_name), "%.*s", (int)(key_size < 40 ? key_size : 40),
					 key);
			break;
		}
	}
	if (value && (memchr(value, 0, value_size) || value_cut_at_nul(value, value_size)) && !h->nul_name[0])
		snprintf(h->nul_name, sizeof(h->nul_name), "%.*s", (int)(key_size < 40 ? key_size : 40), key);
	const char *v = value ? value : "";
	if (key_size == 14 && !strncasecmp(key, "Content-Length", 14)) {
		if (h->n_cl++ == 0) {
			snprintf(h->cl, sizeof(h->cl), "%s", v);
			if (strlen(v) >= sizeof(h->cl))
				h->cl_bad = true;
		} else if (strcmp(h->cl, v)) {
			h->cl_differ = true;
		}
	} else if (key_size == 17 && !strncasecmp(key, "Transfer-Encoding", 17)) {
		if (h->n_te++ == 0)
			snprintf(h->te, sizeof(h->te), "%s", v);
	}
	return MHD_YES;
}

int guard_framing(struct MHD_Connection *c, const struct guard_uri *u, struct api_error *e)
{
	if (u && u->nul)
		return api_fail(e, 400, INVALID, NULL, "invalid_request_target",
				"the request target contains an escaped NUL byte (%%00)");
	if (u && u->ctl)
		return api_fail(e, 400, INVALID, NULL, "invalid_request_target",
				"the request path contains an escaped control byte");
	if (u && u->n_args > GUARD_MAX_ARGS)
		return api_fail(e, 414, INVALID, NULL, "uri_too_long",
				"the request target has %d query arguments; at most %d", u->n_args,
				GUARD_MAX_ARGS);
	struct head_scan h;
	memset(&h, 0, sizeof(h));
	MHD_get_connection_values_n(c, MHD_HEADER_KIND, scan_field, &h);
	if (h.bad_name[0])
		return api_fail(e, 400, INVALID, NULL, "invalid_header",
				"header field name '%s' contains a space or control character (RFC 9112 5.1)",
				h.bad_name);
	if (h.nul_name[0])
		return api_fail(e, 400, INVALID, NULL, "invalid_header",
				"header '%s' contains a NUL byte (or its line ends in a bare LF)", h.nul_name);
	if (h.n_te && h.n_cl)
		return api_fail(e, 400, INVALID, NULL, "invalid_framing",
				"both Content-Length and Transfer-Encoding given (RFC 9112 6.3)");
	if (h.n_cl > 1 && h.cl_differ)
		return api_fail(e, 400, INVALID, NULL, "invalid_framing",
				"several different Content-Length headers (RFC 9112 6.3)");
	if (h.n_cl) {
		bool digits = h.cl[0] && !h.cl_bad;
		for (const char *p = h.cl; *p; p++)
			digits = digits && *p >= '0' && *p <= '9';
		if (!digits)
			return api_fail(e, 400, INVALID, NULL, "invalid_framing",
					"Content-Length '%.24s' is not a decimal number", h.cl);
	}
	if (h.n_te) {
		const char *t = h.te;
		size_t n = strlen(t);
		while (n && (*t == ' ' || *t == '\t'))
			t++, n--;
		while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
			n--;
		if (h.n_te > 1 || n != 7 || strncasecmp(t, "chunked", 7))
			return api_fail(e, 501, INVALID, NULL, "unsupported_transfer_coding",
					"Transfer-Encoding '%.48s' is not supported: only 'chunked'", h.te);
	}
	return 0;
}

int guard_access(struct MHD_Connection *c, const struct config *cfg, bool json_body,
		 struct api_error *e)
{
	const char *host = NULL;
	size_t n = 0;
	if (MHD_lookup_connection_value_n(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST, 4, &host, &n) == MHD_YES &&
	    host && !guard_host_allowed(cfg, host, n))
		return api_fail(e, 403, "permission_error", NULL, "host_not_allowed",
				"Host '%.80s' is not an allowed name of this server (server.allowed_hosts)", host);
	const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	if (origin) {
		const char *o = strstr(origin, "://");
		bool ok = false;
		if (o) {
			o += 3;
			size_t m = strcspn(o, "/");
			ok = guard_host_allowed(cfg, o, m);
		}
		if (!ok)
			return api_fail(e, 403, "permission_error", NULL, "origin_not_allowed",
					"Origin '%.80s' is not allowed (server.allowed_hosts)", origin);
	}
	if (json_body) {
		const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
		const char *t = ct ? ct : "";
		while (*t == ' ' || *t == '\t')
			t++;
		size_t m = strcspn(t, "; \t");
		if (m != 16 || strncasecmp(t, "application/json", 16))
			return api_fail(e, 415, INVALID, NULL, "unsupported_media_type",
					ct ? "Content-Type must be application/json, not '%.60s'" :
					     "Content-Type must be application/json%.0s",
					ct ? ct : "");
	}
	return 0;
}
