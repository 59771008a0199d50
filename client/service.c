/* service.c - the endpoints around generation: /health, /stats,
 * /v1/models, /tokenize, /detokenize, and any request (smoke_request).
 * Shapes from proto/openapi.yaml (Health, Stats, ModelList,
 * TokenizeResponse, DetokenizeResponse). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_impl.h"

int smoke_request(smoke_client *c, const char *method, const char *path, const char *body,
		  long *http_status, char **response, struct smoke_error *err)
{
	if (http_status)
		*http_status = 0;
	if (response)
		*response = NULL;
	if (!c || !method || !path || path[0] != '/')
		return smoke__fail(c, err, SMOKE_E_INVALID, "smoke_request: a NULL argument or a path without a leading '/'");
	struct smoke__sink s;
	memset(&s, 0, sizeof(s));
	int rc = smoke__perform(c, method, path, body, &s, err);
	if (http_status)
		*http_status = s.status;
	if (response && s.status) {
		*response = s.body ? s.body : strdup("");
		s.body = NULL;
		if (!*response)
			rc = smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
	}
	free(s.body);
	return rc;
}

int smoke_health(smoke_client *c, char *status, size_t status_size, struct smoke_error *err)
{
	if (status && status_size)
		status[0] = 0;
	if (!c)
		return smoke__fail(c, err, SMOKE_E_INVALID, "the client is NULL");
	struct smoke__sink s;
	memset(&s, 0, sizeof(s));
	int rc = smoke__perform(c, "GET", "/health", NULL, &s, err);
	/* A 503 still carries a Health body ("loading", "stopping"). */
	if (s.body && status && status_size) {
		json_t *root = json_loadb(s.body, s.len, 0, NULL);
		smoke__copy(status, status_size, json_string_value(json_object_get(root, "status")));
		json_decref(root);
	}
	free(s.body);
	return rc;
}

static int64_t geti(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(json_object_get(o, a), b);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

int smoke_stats(smoke_client *c, struct smoke_stats *out, struct smoke_error *err)
{
	if (!c || !out)
		return smoke__fail(c, err, SMOKE_E_INVALID, "the client or out is NULL");
	memset(out, 0, sizeof(*out));
	json_t *root;
	int rc = smoke__get_json(c, "GET", "/stats", NULL, &root, err);
	if (rc)
		return rc;
	smoke__copy(out->status, sizeof(out->status), json_string_value(json_object_get(root, "status")));
	json_t *up = json_object_get(root, "uptime_s");
	out->uptime_s = json_is_number(up) ? json_number_value(up) : -1;
	smoke__copy(out->model_id, sizeof(out->model_id),
		    json_string_value(json_object_get(json_object_get(root, "model"), "id")));
	out->queue_depth = geti(root, "queue", "depth");
	out->queue_capacity = geti(root, "queue", "capacity");
	out->active = geti(root, "sequences", "active");
	out->max_active = geti(root, "sequences", "max");
	out->kv_bytes = geti(root, "sequences", "kv_bytes");
	out->kv_budget = geti(root, "sequences", "kv_budget");
	out->prompt_tokens = geti(root, "tokens", "prompt");
	out->generated_tokens = geti(root, "tokens", "generated");
	out->admitted = geti(root, "requests", "admitted");
	out->completed = geti(root, "requests", "completed");
	out->cancelled = geti(root, "requests", "cancelled");
	out->failed = geti(root, "requests", "failed");
	out->rejected = geti(root, "requests", "rejected");
	bool ok = out->status[0] && out->queue_depth >= 0 && out->active >= 0 && out->generated_tokens >= 0;
	json_decref(root);
	if (!ok)
		return smoke__fail(c, err, SMOKE_E_PROTOCOL,
				   "GET %s/stats: the reply lacks status, queue.depth, sequences.active or tokens.generated",
				   c->url);
	return 0;
}

/* GET path and return the body text after checking it is a JSON object. */
static int get_text(smoke_client *c, const char *path, char **json, struct smoke_error *err)
{
	if (json)
		*json = NULL;
	if (!c || !json)
		return smoke__fail(c, err, SMOKE_E_INVALID, "the client or json is NULL");
	json_t *root;
	int rc = smoke__get_json(c, "GET", path, NULL, &root, err);
	if (rc)
		return rc;
	/* Re-encoded rather than passed through: the text is then known to be
	 * one compact, valid JSON object. */
	*json = smoke__dump(root);
	json_decref(root);
	return *json ? 0 : smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
}

int smoke_stats_json(smoke_client *c, char **json, struct smoke_error *err)
{
	return get_text(c, "/stats", json, err);
}

int smoke_models_json(smoke_client *c, char **json, struct smoke_error *err)
{
	return get_text(c, "/v1/models", json, err);
}

int smoke_model_id(smoke_client *c, char **id, struct smoke_error *err)
{
	if (id)
		*id = NULL;
	if (!c || !id)
		return smoke__fail(c, err, SMOKE_E_INVALID, "the client or id is NULL");
	json_t *root;
	int rc = smoke__get_json(c, "GET", "/v1/models", NULL, &root, err);
	if (rc)
		return rc;
	const char *s = json_string_value(json_object_get(json_array_get(json_object_get(root, "data"), 0), "id"));
	*id = s ? strdup(s) : NULL;
	json_decref(root);
	if (!s)
		return smoke__fail(c, err, SMOKE_E_PROTOCOL, "GET %s/v1/models: the reply has no data[0].id", c->url);
	return *id ? 0 : smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
}

int smoke_tokenize(smoke_client *c, const char *text, int add_special, int parse_special, int32_t **ids,
		   size_t *n_ids, struct smoke_error *err)
{
	if (ids)
		*ids = NULL;
	if (n_ids)
		*n_ids = 0;
	if (!c || !text || !ids || !n_ids)
		return smoke__fail(c, err, SMOKE_E_INVALID, "smoke_tokenize: a NULL argument");
	json_t *req = json_pack("{s:s, s:b, s:b}", "content", text, "add_special", add_special != 0,
				"parse_special", parse_special != 0);
	if (!req)
		return smoke__fail(c, err, SMOKE_E_INVALID, "the text is not valid UTF-8 (or out of memory)");
	char *body = smoke__dump(req);
	json_decref(req);
	if (!body)
		return smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
	json_t *root;
	int rc = smoke__get_json(c, "POST", "/tokenize", body, &root, err);
	free(body);
	if (rc)
		return rc;
	json_t *arr = json_object_get(root, "tokens");
	if (!json_is_array(arr)) {
		json_decref(root);
		return smoke__fail(c, err, SMOKE_E_PROTOCOL, "POST %s/tokenize: the reply has no 'tokens' array", c->url);
	}
	size_t n = json_array_size(arr);
	int32_t *out = malloc((n ? n : 1) * sizeof(int32_t));
	if (!out) {
		json_decref(root);
		return smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(arr, i);
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
			free(out);
			json_decref(root);
			return smoke__fail(c, err, SMOKE_E_PROTOCOL, "POST %s/tokenize: tokens[%zu] is not a token id",
					   c->url, i);
		}
		out[i] = (int32_t)json_integer_value(v);
	}
	json_decref(root);
	*ids = out;
	*n_ids = n;
	return 0;
}

int smoke_detokenize(smoke_client *c, const int32_t *ids, size_t n, char **text, size_t *text_len,
		     struct smoke_error *err)
{
	if (text)
		*text = NULL;
	if (text_len)
		*text_len = 0;
	if (!c || !text || (!ids && n))
		return smoke__fail(c, err, SMOKE_E_INVALID, "smoke_detokenize: a NULL argument");
	json_t *arr = json_array();
	json_t *req = arr ? json_pack("{s:o}", "tokens", arr) : NULL;
	for (size_t i = 0; req && i < n; i++)
		if (json_array_append_new(arr, json_integer(ids[i]))) {
			json_decref(req);
			req = NULL;
		}
	char *body = req ? smoke__dump(req) : NULL;
	json_decref(req);
	if (!body)
		return smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
	json_t *root;
	int rc = smoke__get_json(c, "POST", "/detokenize", body, &root, err);
	free(body);
	if (rc)
		return rc;
	json_t *s = json_object_get(root, "content");
	if (!json_is_string(s)) {
		json_decref(root);
		return smoke__fail(c, err, SMOKE_E_PROTOCOL, "POST %s/detokenize: the reply has no 'content' string",
				   c->url);
	}
	size_t len = json_string_length(s);
	char *t = malloc(len + 1);
	if (t) {
		memcpy(t, json_string_value(s), len);
		t[len] = 0;
	}
	json_decref(root);
	if (!t)
		return smoke__fail(c, err, SMOKE_E_NOMEM, "out of memory");
	*text = t;
	if (text_len)
		*text_len = len;
	return 0;
}
