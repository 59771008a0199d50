/* oget.c - ranged GETs over libcurl, checked and retried (see oget.h). */
#include "objstore/oget.h"

#include <ctype.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OGET_POOL 8
/* SHA-256 of the empty payload: S3 wants x-amz-content-sha256 on a signed GET. */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct oget {
	struct ocreds c;
	char sigv4[128];
	pthread_mutex_t mu;
	CURL *free_h[OGET_POOL];
	int n_free;
	int tries;
	long stall_s;
	struct oget_stats st;
};

/* One response as it arrives. */
struct resp {
	long status;
	uint8_t *dst;          /* the caller's buffer (2xx bodies) */
	uint64_t want, got;
	bool overflow;
	char err_body[512];    /* the start of an error body (S3's XML) */
	size_t err_len;
	bool have_range, have_len;
	uint64_t r_first, r_last, r_total, c_len;
	char etag[256];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static long env_long(const char *name, long def, long lo, long hi)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return def;
	char *end;
	long x = strtol(v, &end, 10);
	return *end || x < lo || x > hi ? def : x;
}

int oget_new(struct oget **out, const struct ocreds *c, struct smk_err *err)
{
	pthread_once(&global_once, global_init);
	*out = NULL;
	struct oget *g = calloc(1, sizeof(*g));
	if (!g)
		return smk_fail(err, -ENOMEM, "object storage: out of memory");
	g->c = *c;
	snprintf(g->sigv4, sizeof(g->sigv4), "aws:amz:%s:s3", c->region);
	pthread_mutex_init(&g->mu, NULL);
	g->tries = (int)env_long("SMOKE_OBJSTORE_RETRIES", 6, 1, 100);
	g->stall_s = env_long("SMOKE_OBJSTORE_STALL_S", 20, 1, 3600);
	*out = g;
	return 0;
}

void oget_free(struct oget *g)
{
	if (!g)
		return;
	for (int i = 0; i < g->n_free; i++)
		curl_easy_cleanup(g->free_h[i]);
	pthread_mutex_destroy(&g->mu);
	/* The secret leaves memory with the client. */
	explicit_bzero(&g->c, sizeof(g->c));
	free(g);
}

void oget_get_stats(struct oget *g, struct oget_stats *st)
{
	pthread_mutex_lock(&g->mu);
	*st = g->st;
	pthread_mutex_unlock(&g->mu);
}

static CURL *take(struct oget *g)
{
	pthread_mutex_lock(&g->mu);
	CURL *h = g->n_free ? g->free_h[--g->n_free] : NULL;
	pthread_mutex_unlock(&g->mu);
	return h ? h : curl_easy_init();
}

static void give(struct oget *g, CURL *h)
{
	pthread_mutex_lock(&g->mu);
	if (g->n_free < OGET_POOL) {
		g->free_h[g->n_free++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&g->mu);
	if (h)
		curl_easy_cleanup(h);
}

/* ---- response callbacks ---- */

static bool header_is(const char *line, size_t n, const char *name, const char **val)
{
	size_t k = strlen(name);
	if (n <= k || strncasecmp(line, name, k) || line[k] != ':')
		return false;
	*val = line + k + 1;
	while (**val == ' ' || **val == '\t')
		(*val)++;
	return true;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *arg)
{
	struct resp *r = arg;
	size_t n = size * nitems;
	char buf[512];
	size_t m = n < sizeof(buf) - 1 ? n : sizeof(buf) - 1;
	memcpy(buf, line, m);
	buf[m] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	const char *v;
	if (!strncmp(buf, "HTTP/", 5)) {
		/* A new response (after a redirect or 100 Continue): start over. */
		const char *sp = strchr(buf, ' ');
		r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		r->have_range = r->have_len = false;
		r->etag[0] = '\0';
	} else if (header_is(buf, strlen(buf), "content-range", &v)) {
		unsigned long long a, b, t;
		char tail;
		r->have_range = sscanf(v, "bytes %llu-%llu/%llu%c", &a, &b, &t, &tail) == 3;
		r->r_first = a;
		r->r_last = b;
		r->r_total = t;
		if (!r->have_range)
			r->r_total = UINT64_MAX; /* present but unreadable: a mismatch */
		r->have_range = true;
	} else if (header_is(buf, strlen(buf), "content-length", &v)) {
		char *end;
		r->c_len = strtoull(v, &end, 10);
		r->have_len = end != v && !*end;
		if (!r->have_len)
			r->c_len = UINT64_MAX, r->have_len = true;
	} else if (header_is(buf, strlen(buf), "etag", &v)) {
		snprintf(r->etag, sizeof(r->etag), "%.255s", v);
	}
	return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct resp *r = arg;
	size_t n = size * nmemb;
	if (r->status == 206 || r->status == 200) {
		if (n > r->want - r->got) {
			r->overflow = true;
			return 0; /* aborts the transfer */
		}
		memcpy(r->dst + r->got, data, n);
		r->got += n;
		return n;
	}
	size_t room = sizeof(r->err_body) - 1 - r->err_len;
	size_t k = n < room ? n : room;
	memcpy(r->err_body + r->err_len, data, k);
	r->err_len += k;
	r->err_body[r->err_len] = '\0';
	return n;
}

/* S3's <Code>X</Code> from an error body, or "". */
static void s3_code(const struct resp *r, char *out, size_t cap)
{
	out[0] = '\0';
	const char *a = strstr(r->err_body, "<Code>");
	const char *b = a ? strstr(a, "</Code>") : NULL;
	if (a && b && b - a - 6 < (long)cap && b - a - 6 > 0)
		snprintf(out, cap, " (%.*s)", (int)(b - a - 6), a + 6);
}

/* ---- one try ---- */

enum verdict { V_OK, V_RETRY, V_FAIL };

static enum verdict one_try(struct oget *g, CURL *h, const struct oget_target *t, uint64_t off,
			    uint64_t n, void *buf, const char *etag, struct resp *r, int *code,
			    char *why, size_t why_len)
{
	memset(r, 0, sizeof(*r));
	r->dst = buf;
	r->want = n;
	char range[64];
	snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, off, off + n - 1);
	struct curl_slist *hdr = NULL;
	char line[4200];
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, t->url);
	curl_easy_setopt(h, CURLOPT_RANGE, range);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, g->stall_s);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (g->c.ca_bundle[0])
		curl_easy_setopt(h, CURLOPT_CAINFO, g->c.ca_bundle);
	/* Bytes as stored: a server's gzip would change the lengths checked. */
	hdr = curl_slist_append(hdr, "Accept-Encoding: identity");
	if (etag && *etag) {
		snprintf(line, sizeof(line), "If-Match: %s", etag);
		hdr = curl_slist_append(hdr, line);
	}
	if (t->sign && g->c.have_keys) {
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, g->sigv4);
		curl_easy_setopt(h, CURLOPT_USERNAME, g->c.key);
		curl_easy_setopt(h, CURLOPT_PASSWORD, g->c.secret);
		hdr = curl_slist_append(hdr, "x-amz-content-sha256: " EMPTY_SHA256);
		if (g->c.token[0]) {
			snprintf(line, sizeof(line), "x-amz-security-token: %s", g->c.token);
			hdr = curl_slist_append(hdr, line);
			explicit_bzero(line, sizeof(line));
		}
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	CURLcode cc = curl_easy_perform(h);
	/* libcurl keeps its copies; drop the credentials from the handle. */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_PASSWORD, "");
	curl_slist_free_all(hdr);

	if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && r->overflow)) {
		*code = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
		snprintf(why, why_len, "%s%s", curl_easy_strerror(cc),
			 cc == CURLE_OPERATION_TIMEDOUT ? " (stalled or timed out)" : "");
		switch (cc) {
		case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_CERTPROBLEM: case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_URL_MALFORMAT: case CURLE_NOT_BUILT_IN:
			/* Configuration, not weather: another try would fail alike. */
			*code = -EKEYREJECTED;
			return V_FAIL;
		default:
			return V_RETRY;
		}
	}
	if (r->status != 206) {
		char s3[96];
		s3_code(r, s3, sizeof(s3));
		snprintf(why, why_len, "HTTP %ld%s", r->status, s3);
		switch (r->status) {
		case 429: case 500: case 502: case 503: case 504:
			*code = -EAGAIN;
			return V_RETRY;
		case 200:
			*code = -EPROTO;
			snprintf(why, why_len, "HTTP 200 to a Range request: the server does not honour Range");
			return V_FAIL;
		case 401: case 403:
			*code = -EACCES;
			return V_FAIL;
		case 404:
			*code = -ENOENT;
			return V_FAIL;
		case 412:
			*code = -ESTALE;
			snprintf(why, why_len, "HTTP 412: the object changed (ETag is no longer %s)", etag);
			return V_FAIL;
		default:
			*code = -EIO;
			return V_FAIL;
		}
	}
	*code = -EIO;
	if (r->overflow) {
		snprintf(why, why_len, "the body is longer than the %" PRIu64 " bytes asked for", n);
		return V_RETRY;
	}
	if (!r->have_range || r->r_first != off || r->r_last != off + n - 1) {
		snprintf(why, why_len, "Content-Range does not match the range asked for");
		return V_RETRY;
	}
	if (r->have_len && r->c_len != n) {
		snprintf(why, why_len, "Content-Length %" PRIu64 " for %" PRIu64 " bytes asked for",
			 r->c_len, n);
		return V_RETRY;
	}
	if (r->got != n) {
		snprintf(why, why_len, "the body ended after %" PRIu64 " of %" PRIu64 " bytes", r->got,
			 n);
		return V_RETRY;
	}
	*code = 0;
	return V_OK;
}

static void backoff(int attempt)
{
	/* 0.1 s doubling, capped at 5 s, with up to 25% jitter so that many
	 * replicas throttled together do not retry in step. */
	double s = 0.1 * (double)(1u << (attempt < 6 ? attempt : 6));
	if (s > 5.0)
		s = 5.0;
	s *= 1.0 + (double)(rand() % 256) / 1024.0;
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Request [off, off+n) with retries; r holds the last response. */
static int request(struct oget *g, const struct oget_target *t, uint64_t size, const char *etag,
		   uint64_t off, uint64_t n, void *buf, struct resp *r, struct smk_err *err)
{
	CURL *h = take(g);
	if (!h)
		return smk_fail(err, -ENOMEM, "%s: out of memory for an HTTP handle", t->shown);
	char why[300] = "";
	int code = -EIO, tries = 0;
	enum verdict v = V_RETRY;
	for (int a = 0; a < g->tries && v == V_RETRY; a++) {
		if (a)
			backoff(a - 1);
		tries++;
		v = one_try(g, h, t, off, n, buf, etag, r, &code, why, sizeof(why));
		/* An object that is not the size first seen is not the object first seen. */
		if (v == V_OK && size != UINT64_MAX && r->r_total != size) {
			v = V_FAIL;
			code = -ESTALE;
			snprintf(why, sizeof(why), "Content-Range says %" PRIu64 " bytes, the object had %"
				 PRIu64, r->r_total, size);
		}
	}
	give(g, h);
	pthread_mutex_lock(&g->mu);
	g->st.requests += (uint64_t)tries;
	g->st.retries += (uint64_t)(tries - 1);
	if (v == V_OK)
		g->st.bytes += n;
	else
		g->st.failures++;
	pthread_mutex_unlock(&g->mu);
	if (v == V_OK)
		return 0;
	return smk_fail(err, code, "%s: bytes %" PRIu64 "-%" PRIu64 ": %s%s", t->shown, off,
			off + n - 1, why, v == V_RETRY ? " (gave up after retries)" : "");
}

int oget_stat(struct oget *g, const struct oget_target *t, uint64_t *size, char *etag,
	      size_t etag_cap, struct smk_err *err)
{
	uint8_t one;
	struct resp r;
	int rc = request(g, t, UINT64_MAX, NULL, 0, 1, &one, &r, err);
	if (rc == -EPROTO || (rc && r.status == 416))
		return smk_fail(err, rc ? rc : -EINVAL, "%s: %s", t->shown,
				r.status == 416 ? "the object is empty"
						: "the server does not honour Range requests (HTTP 200)");
	if (rc)
		return rc;
	if (r.r_total == 0 || r.r_total == UINT64_MAX)
		return smk_fail(err, -EPROTO, "%s: no object size in Content-Range", t->shown);
	*size = r.r_total;
	snprintf(etag, etag_cap, "%s", r.etag);
	return 0;
}

int oget_range(struct oget *g, const struct oget_target *t, uint64_t size, const char *etag,
	       uint64_t off, uint64_t n, void *buf, struct smk_err *err)
{
	if (n == 0)
		return 0;
	if (off > size || n > size - off)
		return smk_fail(err, -EINVAL, "%s: bytes %" PRIu64 "+%" PRIu64 " are past its end (%"
				PRIu64 " bytes)", t->shown, off, n, size);
	struct resp r;
	return request(g, t, size, etag, off, n, buf, &r, err);
}
