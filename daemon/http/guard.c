/* guard.c - Host, Origin and media type checks on a request's head (guard.h). */
#include "http/guard.h"

#include <ctype.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define INVALID "invalid_request_error"

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
