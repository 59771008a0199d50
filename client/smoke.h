/* smoke.h - libsmoke, the C client of the smoke inference daemon (smoked).
 *
 * A thin, blocking client of the HTTP API described in proto/openapi.yaml:
 * completions and chat completions (whole or streamed through a callback),
 * health, statistics, the model list and tokenisation.  Built on libcurl and
 * jansson; link with `pkg-config --cflags --libs smoke`.
 *
 *     smoke_client *c;
 *     struct smoke_error err;
 *     if (smoke_client_new(&c, "http://127.0.0.1:8080", getenv("SMOKE_API_KEY"), &err))
 *         die(err.message);
 *     struct smoke_params p;
 *     smoke_params_init(&p);
 *     p.max_tokens = 32;
 *     p.temperature = 0;
 *     struct smoke_result *r;
 *     if (smoke_complete(c, "The capital of France is", &p, &r, &err) == 0) {
 *         fwrite(r->text, 1, r->text_len, stdout);
 *         smoke_result_free(r);
 *     }
 *     smoke_client_free(c);
 *
 * Conventions
 * - Every fallible function returns 0 (SMOKE_OK) or a negative code from
 *   enum smoke_code.  An HTTP error status S (400..599) is returned as -S, so
 *   `rc == SMOKE_E_UNAUTHORIZED` is `rc == -401`.
 * - Every such function takes a `struct smoke_error *err` last; it may be
 *   NULL.  When given, it is filled on failure (and cleared on success).  The
 *   handle also keeps a copy of the last error: smoke_client_error().
 * - Ownership: a pointer this library returns through an out-parameter is
 *   the caller's; each function says which function frees it.  Pointers the
 *   caller passes in are only borrowed for the duration of the call (the
 *   base URL and API key are copied).
 * - Threads: one handle must not be used by two threads at once; separate
 *   handles may be used concurrently (libcurl's global initialisation is
 *   done once, thread-safely, by smoke_client_new).
 * - A handle keeps its HTTP connection alive between calls.
 */
#ifndef SMOKE_H
#define SMOKE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SMOKE_BUILDING) && defined(__GNUC__)
#define SMOKE_API __attribute__((visibility("default")))
#else
#define SMOKE_API
#endif

/* ---- errors ---- */

enum smoke_code {
	SMOKE_OK = 0,
	SMOKE_E_INVALID = -1,    /* a bad argument from the caller (message says which) */
	SMOKE_E_NOMEM = -2,      /* out of memory */
	SMOKE_E_CONNECT = -3,    /* cannot connect: refused, no route, unknown host (message names the URL) */
	SMOKE_E_TIMEOUT = -4,    /* the connect or total timeout passed */
	SMOKE_E_TRANSPORT = -5,  /* another transfer failure (libcurl's text in the message) */
	SMOKE_E_PROTOCOL = -6,   /* the reply is not what the API promises (not JSON, a broken stream, ...) */
	SMOKE_E_ABORTED = -7,    /* the stream callback asked to stop */
	SMOKE_E_STREAM = -8,     /* the server sent an error object in the middle of a stream */
	/* HTTP error statuses, as -status (any 400..599 may appear). */
	SMOKE_E_BAD_REQUEST = -400,    /* a field missing, of the wrong type or out of range */
	SMOKE_E_UNAUTHORIZED = -401,   /* missing or wrong API key */
	SMOKE_E_NOT_FOUND = -404,      /* unknown path or model */
	SMOKE_E_METHOD = -405,
	SMOKE_E_TOO_LARGE = -413,      /* request body above the server's limits.max_body */
	SMOKE_E_SERVER = -500,
	SMOKE_E_UNAVAILABLE = -503,    /* loading, queue full or stopping (see retry_after) */
};

struct smoke_error {
	int code;            /* the code the call returned; 0 if none */
	int http_status;     /* the response's HTTP status, 0 if there was none */
	int retry_after;     /* seconds from a Retry-After header, 0 if none */
	char type[48];       /* error.type of an OpenAI-style error body, e.g. "invalid_request_error"; "" if none */
	char param[96];      /* error.param: the JSON path of the offending field; "" if none */
	char err_code[48];   /* error.code, e.g. "out_of_range", "queue_full"; "" if none */
	/* One sentence naming what failed and why, e.g.
	 * "POST http://127.0.0.1:8080/v1/completions: HTTP 400: 'temperature' is -1; allowed: 0..2"
	 * "cannot connect to http://127.0.0.1:9/: Failed to connect to 127.0.0.1 port 9 ...". */
	char message[1024];
};

/* A static English name of a code ("HTTP 401", "connection failed", ...). */
SMOKE_API const char *smoke_strerror(int code);

/* The library's version, e.g. "0.1.0" (static string). */
SMOKE_API const char *smoke_version(void);

/* ---- the handle ---- */

typedef struct smoke_client smoke_client;

/* Create a client of the daemon at base_url ("http://HOST:PORT", with or
 * without a trailing "/" or "/v1"; NULL means "http://127.0.0.1:8080").
 * api_key, if non-NULL and non-empty, is sent as "Authorization: Bearer
 * KEY".  Both strings are copied.  Defaults: connect timeout 10 s, no total
 * timeout (generation may take long).  Nothing is sent until the first call.
 * On success *out is the caller's: free it with smoke_client_free(). */
SMOKE_API int smoke_client_new(smoke_client **out, const char *base_url, const char *api_key,
			       struct smoke_error *err);

/* Free the handle (NULL is allowed); returns NULL, so `c = smoke_client_free(c);`. */
SMOKE_API smoke_client *smoke_client_free(smoke_client *c);

/* Timeouts in milliseconds: connect_ms to open the connection (0: libcurl's
 * 300 s), total_ms for a whole request including a stream (0: none). */
SMOKE_API int smoke_client_set_timeouts(smoke_client *c, long connect_ms, long total_ms);

/* The normalised base URL (owned by the handle, valid until it is freed). */
SMOKE_API const char *smoke_client_url(const smoke_client *c);

/* The last error recorded on this handle (owned by the handle; overwritten
 * by the next call; code 0 after a call that succeeded). */
SMOKE_API const struct smoke_error *smoke_client_error(const smoke_client *c);

/* Free any buffer this library returned without a dedicated free function
 * (JSON texts, token arrays, detokenized text).  NULL is allowed. */
SMOKE_API void smoke_free(void *p);

/* ---- generation ---- */

/* Sampling options.  smoke_params_init() marks every field "unset" (not sent,
 * so the server's default applies): NaN for the doubles, SMOKE_UNSET for the
 * integers.  Values are sent as given, not checked here: the server checks
 * ranges and answers 400 naming the field (e.g. temperature -1). */
#define SMOKE_UNSET INT64_MIN

struct smoke_params {
	int64_t max_tokens;        /* tokens to generate at most (server default: limits.default_max_tokens) */
	double temperature;        /* 0..2; 0 = greedy (server default 1) */
	double top_p;              /* (0, 1] */
	int64_t top_k;             /* 0 = off */
	double min_p;              /* [0, 1] */
	double repeat_penalty;     /* (0, 10] */
	int64_t seed;              /* >= 0; same seed, same text; unset: random */
	const char *const *stop;   /* n_stop strings (<= 4, borrowed); generation stops before the first */
	size_t n_stop;
	const char *model;         /* must name the served model when given; NULL: not sent */
	/* A JSON object whose members are added to the request body as they are
	 * (e.g. "{\"stream_options\":{\"include_usage\":true}}"); NULL: none. */
	const char *extra_json;
};

SMOKE_API void smoke_params_init(struct smoke_params *p);

/* The outcome of a completion or chat, whole or streamed.  Allocated by the
 * library; free with smoke_result_free(). */
struct smoke_result {
	char *text;                /* the generated text (chat: the reply), NUL-terminated */
	size_t text_len;           /* its length in bytes (it could hold a NUL) */
	char finish_reason[16];    /* "stop", "length", "cancelled"; "" if the server gave none */
	int64_t prompt_tokens;     /* usage; -1 when the reply had none (a stream without include_usage) */
	int64_t completion_tokens;
	int64_t total_tokens;
	char *id;                  /* the response id ("" if absent) */
	char *model;               /* the model that answered ("" if absent) */
	char *json;                /* non-streamed: the whole response body; streamed: NULL */
};

SMOKE_API void smoke_result_free(struct smoke_result *r);

/* Blocking completion of prompt (text; the server adds BOS and parses
 * special tokens).  params may be NULL (all defaults).  On success *out is
 * the caller's (smoke_result_free). */
SMOKE_API int smoke_complete(smoke_client *c, const char *prompt, const struct smoke_params *params,
			     struct smoke_result **out, struct smoke_error *err);

struct smoke_message {
	const char *role;          /* "system", "developer", "user" or "assistant" */
	const char *content;
};

/* Blocking chat: the server formats messages with the model's own chat
 * template.  As smoke_complete otherwise. */
SMOKE_API int smoke_chat(smoke_client *c, const struct smoke_message *messages, size_t n_messages,
			 const struct smoke_params *params, struct smoke_result **out,
			 struct smoke_error *err);

/* One server-sent event of a stream, as the callback sees it.  Every pointer
 * is borrowed: valid only until the callback returns. */
struct smoke_chunk {
	const char *text;          /* the new text (completion text or chat delta content); "" if none */
	size_t text_len;
	const char *role;          /* chat: "assistant" on the first chunk; NULL otherwise */
	const char *finish_reason; /* NULL until the chunk that ends the choice */
	int64_t completion_tokens; /* usage chunk (include_usage): the count; -1 otherwise */
	const char *json;          /* the event's whole data line (one JSON object) */
	size_t index;              /* 0 for the first event, then 1, 2, ... */
};

/* Called once per event, in order, from inside smoke_*_stream.  Return 0 to
 * go on; any other value stops the transfer at once: the call then closes
 * the connection (the daemon cancels the sequence) and returns
 * SMOKE_E_ABORTED.  The callback must not use the same handle. */
typedef int (*smoke_stream_cb)(const struct smoke_chunk *chunk, void *user);

/* Streamed completion / chat ("stream": true): the text arrives through cb
 * as the server generates it.  Returns 0 once "data: [DONE]" arrived;
 * SMOKE_E_STREAM if the server reported an error mid-stream (its message,
 * type and code in err); SMOKE_E_PROTOCOL if the stream ended without
 * [DONE]; an HTTP code if the request was refused before streaming began.
 * out may be NULL; when given and the call succeeds (or the callback
 * aborted), *out holds the concatenated text, the finish reason and usage if
 * the server sent it, and is the caller's (smoke_result_free).  On an abort,
 * *out holds the text received so far. */
SMOKE_API int smoke_complete_stream(smoke_client *c, const char *prompt, const struct smoke_params *params,
				    smoke_stream_cb cb, void *user, struct smoke_result **out,
				    struct smoke_error *err);
SMOKE_API int smoke_chat_stream(smoke_client *c, const struct smoke_message *messages, size_t n_messages,
				const struct smoke_params *params, smoke_stream_cb cb, void *user,
				struct smoke_result **out, struct smoke_error *err);

/* ---- service endpoints ---- */

/* GET /health.  Returns 0 when the daemon is ready (HTTP 200), or
 * SMOKE_E_UNAVAILABLE (-503) while it loads or stops, or another error.
 * status (size status_size, may be NULL) receives the reported state:
 * "ok", "loading" or "stopping" ("" if none). */
SMOKE_API int smoke_health(smoke_client *c, char *status, size_t status_size, struct smoke_error *err);

/* The core of GET /stats, parsed.  Fields the server did not send are -1. */
struct smoke_stats {
	char status[16];           /* "loading", "ok", "stopping" */
	double uptime_s;
	char model_id[128];
	int64_t queue_depth, queue_capacity;
	int64_t active, max_active;             /* sequences */
	int64_t kv_bytes, kv_budget;
	int64_t prompt_tokens, generated_tokens;
	int64_t admitted, completed, cancelled, failed, rejected;
};

/* GET /stats into *out (caller's storage; nothing to free).  For everything
 * else /stats holds (timings, and the weight hierarchy when it reports),
 * use smoke_stats_json. */
SMOKE_API int smoke_stats(smoke_client *c, struct smoke_stats *out, struct smoke_error *err);

/* GET /stats as the server's JSON text.  *json is the caller's (smoke_free). */
SMOKE_API int smoke_stats_json(smoke_client *c, char **json, struct smoke_error *err);

/* GET /v1/models as JSON text (*json: smoke_free), and the served model's
 * id alone (*id: smoke_free). */
SMOKE_API int smoke_models_json(smoke_client *c, char **json, struct smoke_error *err);
SMOKE_API int smoke_model_id(smoke_client *c, char **id, struct smoke_error *err);

/* POST /tokenize: the token ids of text (add_special: BOS as the model
 * does; parse_special: recognise special-token text).  *ids (n_ids
 * entries) is the caller's (smoke_free). */
SMOKE_API int smoke_tokenize(smoke_client *c, const char *text, int add_special, int parse_special,
			     int32_t **ids, size_t *n_ids, struct smoke_error *err);

/* POST /detokenize: the text of n ids.  *text (NUL-terminated, *text_len
 * bytes; text_len may be NULL) is the caller's (smoke_free). */
SMOKE_API int smoke_detokenize(smoke_client *c, const int32_t *ids, size_t n, char **text,
			       size_t *text_len, struct smoke_error *err);

/* Any request: method ("GET", "POST"), path ("/v1/models"), an optional
 * body (sent as application/json).  *http_status receives the status and
 * *response the body (NUL-terminated; the caller's: smoke_free); both may
 * be NULL.  Returns 0 for a 2xx answer, else as every other call (the
 * body is still returned for an HTTP error). */
SMOKE_API int smoke_request(smoke_client *c, const char *method, const char *path, const char *body,
			    long *http_status, char **response, struct smoke_error *err);

#ifdef __cplusplus
}
#endif

#endif
