/* transport.c - the libsmoke handle, errors, and one HTTP request through
 * libcurl (a reused easy handle, so the connection stays alive).
 *
 * Error bodies follow proto/openapi.yaml's Error schema:
 * {"error":{"message","type","param","code"}}; their fields are copied into
 * struct smoke_error so that callers can test error.param or error.code
 * rather than parse sentences. */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_impl.h"
#include "smk_config.h"

/* ---- errors ---- */

const char *smoke_strerror(int code)
{
	switch (code) {
	case SMOKE_OK: return "success";
	case SMOKE_E_INVALID: return "invalid argument";
	case SMOKE_E_NOMEM: return "out of memory";
	case SMOKE_E_CONNECT: return "connection failed";
	case SMOKE_E_TIMEOUT: return "timed out";
	case SMOKE_E_TRANSPORT: return "transfer failed";
	case SMOKE_E_PROTOCOL: return "unexpected reply";
	case SMOKE_E_ABORTED: return "stopped by the callback";
	case SMOKE_E_STREAM: return "error in the stream";
	case SMOKE_E_BAD_REQUEST: return "HTTP 400 bad request";
	case SMOKE_E_UNAUTHORIZED: return "HTTP 401 unauthorised";
	case SMOKE_E_NOT_FOUND: return "HTTP 404 not found";
	case SMOKE_E_METHOD: return "HTTP 405 method not allowed";
	case SMOKE_E_TOO_LARGE: return "HTTP 413 body too large";
	case SMOKE_E_SERVER: return "HTTP 500 server error";
	case SMOKE_E_UNAVAILABLE: return "HTTP 503 unavailable";
	default:
		return code <= -400 && code >= -599 ? "HTTP error" : "unknown error";
	}
}

const char *smoke_version(void)
{
	return SMK_VERSION;
}

void smoke__copy(char *dst, size_t n, const char *src)
{
	if (n == 0)
		return;
	snprintf(dst, n, "%s", src ? src : "");
}

void smoke__error_set(struct smoke_error *e, int code, const char *fmt, ...)
{
	memset(e, 0, sizeof(*e));
	e->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

int smoke__fail_with(smoke_client *c, struct smoke_error *err, const struct smoke_error *e)
{
	if (c && &c->last != e)
		c->last = *e;
	if (err && err != e)
		*err = *e;
	return e->code;
}

int smoke__fail(smoke_client *c, struct smoke_error *err, int code, const char *fmt, ...)
{
	struct smoke_error e;
	memset(&e, 0, sizeof(e));
	e.code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.message, sizeof(e.message), fmt, ap);
	va_end(ap);
	return smoke__fail_with(c, err, &e);
}

int smoke__ok(smoke_client *c, struct smoke_error *err)
{
	if (c)
		memset(&c->last, 0, sizeof(c->last));
	if (err)
		memset(err, 0, sizeof(*err));
	return 0;
}

char *smoke__dump(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

void smoke_free(void *p)
{
	free(p);
}

/* ---- the handle ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* "host:port", "http://host:port/", ".../v1" -> "http://host:port". */
static char *normalise_url(const char *in)
{
	const char *u = in && *in ? in : "http://127.0.0.1:8080";
	bool scheme = !strncmp(u, "http://", 7) || !strncmp(u, "https://", 8);
	size_t n = strlen(u);
	char *s = malloc(n + 8);
	if (!s)
		return NULL;
	snprintf(s, n + 8, "%s%s", scheme ? "" : "http://", u);
	n = strlen(s);
	while (n && s[n - 1] == '/')
		s[--n] = 0;
	if (n >= 3 && !strcmp(s + n - 3, "/v1")) {
		n -= 3;
		s[n] = 0;
		while (n && s[n - 1] == '/')
			s[--n] = 0;
	}
	return s;
}

int smoke_client_new(smoke_client **out, const char *base_url, const char *api_key,
		     struct smoke_error *err)
{
	if (!out)
		return smoke__fail(NULL, err, SMOKE_E_INVALID, "smoke_client_new: out is NULL");
	*out = NULL;
	if (base_url && strpbrk(base_url, " \t\r\n"))
		return smoke__fail(NULL, err, SMOKE_E_INVALID,
				   "base URL '%.200s' contains white space", base_url);
	if (api_key) {
		for (const char *k = api_key; *k; k++)
			if (iscntrl((unsigned char)*k) || *k == ' ')
				return smoke__fail(NULL, err, SMOKE_E_INVALID,
						   "the API key contains a space or a control character");
	}
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return smoke__fail(NULL, err, SMOKE_E_TRANSPORT, "libcurl initialisation failed: %s",
				   curl_easy_strerror(curl_init_rc));
	smoke_client *c = calloc(1, sizeof(*c));
	if (!c)
		return smoke__fail(NULL, err, SMOKE_E_NOMEM, "out of memory");
	c->url = normalise_url(base_url);
	c->curl = curl_easy_init();
	bool nomem = !c->url || !c->curl;
	if (!nomem && api_key && *api_key && asprintf(&c->auth, "Authorization: Bearer %s", api_key) < 0) {
		c->auth = NULL;
		nomem = true;
	}
	if (nomem) {
		smoke_client_free(c);
		return smoke__fail(NULL, err, SMOKE_E_NOMEM, "out of memory");
	}
	c->connect_ms = 10000;
	c->total_ms = 0;
	*out = c;
	return smoke__ok(NULL, err);
}

smoke_client *smoke_client_free(smoke_client *c)
{
	if (!c)
		return NULL;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->url);
	if (c->auth) {
		/* The key is a secret: do not leave it in freed memory. */
		memset(c->auth, 0, strlen(c->auth));
		free(c->auth);
	}
	free(c);
	return NULL;
}

int smoke_client_set_timeouts(smoke_client *c, long connect_ms, long total_ms)
{
	if (!c || connect_ms < 0 || total_ms < 0)
		return smoke__fail(c, NULL, SMOKE_E_INVALID, "timeouts must be >= 0 ms");
	c->connect_ms = connect_ms;
	c->total_ms = total_ms;
	return smoke__ok(c, NULL);
}

const char *smoke_client_url(const smoke_client *c)
{
	return c ? c->url : NULL;
}

const struct smoke_error *smoke_client_error(const smoke_client *c)
{
	return c ? &c->last : NULL;
}

/* ---- one request ---- */

static int body_append(struct smoke__sink *s, const char *p, size_t n)
{
	if (n > SMOKE__MAX_BODY || s->len > SMOKE__MAX_BODY - n)
		return SMOKE_E_PROTOCOL;
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->len + n + 1)
			cap *= 2;
		char *b = realloc(s->body, cap);
		if (!b)
			return SMOKE_E_NOMEM;
		s->body = b;
		s->cap = cap;
	}
	memcpy(s->body + s->len, p, n);
	s->len += n;
	s->body[s->len] = 0;
	return 0;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *user)
{
	struct smoke__sink *s = user;
	size_t n = size * nmemb;
	if (s->status == 0)
		curl_easy_getinfo(s->c->curl, CURLINFO_RESPONSE_CODE, &s->status);
	int rc;
	if (s->on_data && s->status >= 200 && s->status < 300) {
		rc = s->on_data(s, p, n);
	} else {
		rc = body_append(s, p, n);
		if (rc)
			smoke__error_set(&s->stop_err, rc, rc == SMOKE_E_NOMEM ? "out of memory"
					 : "the response is larger than %zu bytes", SMOKE__MAX_BODY);
	}
	if (rc) {
		s->stop_code = rc;
		if (!s->stop_err.code)
			smoke__error_set(&s->stop_err, rc, "%s", smoke_strerror(rc));
		return n == 0 ? 1 : 0; /* any count but n makes libcurl abort */
	}
	return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *user)
{
	struct smoke__sink *s = user;
	size_t n = size * nmemb;
	static const char name[] = "retry-after:";
	if (n > sizeof(name) && !strncasecmp(p, name, sizeof(name) - 1)) {
		long v = strtol(p + sizeof(name) - 1, NULL, 10);
		s->retry_after = v > 0 && v < 86400 ? (int)v : 0;
	}
	return n;
}

/* Copy a printable prefix of a non-JSON body into a message. */
static void snippet(char *dst, size_t cap, const char *body, size_t len)
{
	size_t k = 0;
	for (size_t i = 0; i < len && k + 1 < cap && i < 200; i++)
		dst[k++] = (unsigned char)body[i] >= 0x20 && body[i] != 0x7f ? body[i] : ' ';
	dst[k] = 0;
}

static int http_error(smoke_client *c, struct smoke_error *err, const char *method, const char *url,
		      struct smoke__sink *s)
{
	struct smoke_error e;
	memset(&e, 0, sizeof(e));
	e.http_status = (int)s->status;
	e.retry_after = s->retry_after;
	e.code = s->status >= 400 && s->status <= 599 ? -(int)s->status : SMOKE_E_PROTOCOL;
	json_t *root = s->body ? json_loadb(s->body, s->len, 0, NULL) : NULL;
	json_t *jerr = json_object_get(root, "error");
	const char *msg = json_string_value(json_object_get(jerr, "message"));
	if (msg) {
		smoke__copy(e.type, sizeof(e.type), json_string_value(json_object_get(jerr, "type")));
		smoke__copy(e.param, sizeof(e.param), json_string_value(json_object_get(jerr, "param")));
		smoke__copy(e.err_code, sizeof(e.err_code), json_string_value(json_object_get(jerr, "code")));
		snprintf(e.message, sizeof(e.message), "%s %s: HTTP %ld: %s", method, url, s->status, msg);
	} else {
		char text[256];
		snippet(text, sizeof(text), s->body ? s->body : "", s->len);
		snprintf(e.message, sizeof(e.message), "%s %s: HTTP %ld%s%s", method, url, s->status,
			 text[0] ? ": " : " (empty body)", text);
	}
	json_decref(root);
	return smoke__fail_with(c, err, &e);
}

int smoke__perform(smoke_client *c, const char *method, const char *path, const char *body,
		   struct smoke__sink *sink, struct smoke_error *err)
{
	char *url = NULL;
	if (asprintf(&url, "%s%s", c->url, path) < 0)
		return smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
	CURL *h = c->curl;
	curl_easy_reset(h);
	sink->c = c;
	struct curl_slist *hdr = NULL, *t;
	int rc = SMOKE_E_NOMEM;
	/* "Expect:" stops libcurl from waiting for 100-continue on big bodies. */
	if (!(t = curl_slist_append(hdr, "Expect:")))
		goto nomem;
	hdr = t;
	if (body && !(t = curl_slist_append(hdr, "Content-Type: application/json")))
		goto nomem;
	hdr = body ? t : hdr;
	if (sink->on_data && !(t = curl_slist_append(hdr, "Accept: text/event-stream")))
		goto nomem;
	hdr = sink->on_data ? t : hdr;
	if (c->auth && !(t = curl_slist_append(hdr, c->auth)))
		goto nomem;
	hdr = c->auth ? t : hdr;

	c->errbuf[0] = 0;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* safe in threaded callers */
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->total_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, sink);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "libsmoke/" SMK_VERSION);
	if (!strcmp(method, "GET")) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else {
		if (strcmp(method, "POST"))
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? strlen(body) : 0));
	}

	CURLcode cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &sink->status);
	if (cc == CURLE_WRITE_ERROR && sink->stop_code) {
		rc = smoke__fail_with(c, err, &sink->stop_err);
	} else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
		   cc == CURLE_COULDNT_RESOLVE_PROXY) {
		rc = smoke__fail(c, err, SMOKE_E_CONNECT, "cannot connect to %s: %s", c->url,
				 c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
	} else if (cc == CURLE_OPERATION_TIMEDOUT) {
		rc = smoke__fail(c, err, SMOKE_E_TIMEOUT, "%s %s: %s", method, url,
				 c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
	} else if (cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL) {
		rc = smoke__fail(c, err, SMOKE_E_INVALID, "bad URL %s: %s", url,
				 c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
	} else if (cc != CURLE_OK) {
		rc = smoke__fail(c, err, SMOKE_E_TRANSPORT, "%s %s: %s", method, url,
				 c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
	} else if (sink->status < 200 || sink->status >= 300) {
		rc = http_error(c, err, method, url, sink);
	} else {
		rc = smoke__ok(c, err);
	}
	curl_slist_free_all(hdr);
	free(url);
	return rc;
nomem:
	curl_slist_free_all(hdr);
	free(url);
	return smoke__fail(c, err, rc, "out of memory");
}

int smoke__get_json(smoke_client *c, const char *method, const char *path, const char *body,
		    json_t **out, struct smoke_error *err)
{
	*out = NULL;
	struct smoke__sink s;
	memset(&s, 0, sizeof(s));
	int rc = smoke__perform(c, method, path, body, &s, err);
	if (rc) {
		free(s.body);
		return rc;
	}
	json_error_t je;
	json_t *root = s.body ? json_loadb(s.body, s.len, 0, &je) : NULL;
	if (!json_is_object(root)) {
		if (!s.body)
			snprintf(je.text, sizeof(je.text), "empty body");
		else if (root)
			snprintf(je.text, sizeof(je.text), "not a JSON object");
		json_decref(root);
		free(s.body);
		return smoke__fail(c, err, SMOKE_E_PROTOCOL, "%s %s%s: the reply is not a JSON object (%s)",
				   method, c->url, path, je.text);
	}
	free(s.body);
	*out = root;
	return 0;
}
