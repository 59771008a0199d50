/* client_impl.h - libsmoke internals shared by its source files (never
 * installed).  Internal names are smoke__*; the public API is smoke.h. */
#ifndef SMOKE_CLIENT_IMPL_H
#define SMOKE_CLIENT_IMPL_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>

#include "smoke.h"

struct smoke_client {
	CURL *curl;                  /* reused: keeps the connection alive between calls */
	char *url;                   /* normalised base URL, no trailing '/' and no "/v1" */
	char *auth;                  /* "Authorization: Bearer KEY", or NULL */
	long connect_ms, total_ms;
	struct smoke_error last;     /* the last call's error (code 0 after a success) */
	char errbuf[CURL_ERROR_SIZE];
};

/* Where response bytes go.  A plain response is collected in body (up to
 * SMOKE__MAX_BODY bytes).  When `on_data` is set, it receives the bytes of a
 * 2xx response as they arrive (a stream) and returns 0 or a negative code,
 * which stops the transfer; the code and message recorded by the sink are
 * then what the call returns.  Bytes of an error status are always
 * collected in body, so that the error object can be read. */
struct smoke__sink {
	int (*on_data)(struct smoke__sink *s, const char *p, size_t n);
	smoke_client *c;
	long status;                 /* the HTTP status, known at the first byte */
	int retry_after;
	char *body;
	size_t len, cap;
	int stop_code;               /* the code on_data returned, 0 if it never stopped */
	struct smoke_error stop_err; /* its message */
};

#define SMOKE__MAX_BODY ((size_t)64 << 20)

/* Record an error: fills c->last (c may be NULL) and *err (may be NULL),
 * returns code. */
int smoke__fail(smoke_client *c, struct smoke_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Record the error e (already filled) in c->last and *err; returns e->code. */
int smoke__fail_with(smoke_client *c, struct smoke_error *err, const struct smoke_error *e);

/* Mark a success: clears c->last and *err; returns 0. */
int smoke__ok(smoke_client *c, struct smoke_error *err);

/* Fill e from a code and a formatted message (the others fields zeroed). */
void smoke__error_set(struct smoke_error *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Perform one request.  sink must be zero-initialised by the caller except
 * for on_data; the call sets sink->c.  Returns 0 for a 2xx status, else the
 * error code (recorded in c->last and *err): a transport failure, the code
 * the sink stopped with, or -status with the server's error object read
 * from the body.  The caller frees sink->body (free). */
int smoke__perform(smoke_client *c, const char *method, const char *path, const char *body,
		   struct smoke__sink *sink, struct smoke_error *err);

/* perform + parse the body as a JSON object; *out is the caller's
 * (json_decref).  A body that is not a JSON object is SMOKE_E_PROTOCOL. */
int smoke__get_json(smoke_client *c, const char *method, const char *path, const char *body,
		    json_t **out, struct smoke_error *err);

/* Dump a jansson value to a malloc'd compact string (NULL when out of
 * memory). */
char *smoke__dump(const json_t *v);

/* Copy src into dst (size n), always NUL-terminated, truncating. */
void smoke__copy(char *dst, size_t n, const char *src);

#endif
