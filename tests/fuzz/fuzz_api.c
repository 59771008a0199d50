/* fuzz_api.c - the request JSON of each HTTP endpoint (daemon/http/api.c):
 * /v1/completions and /v1/chat/completions (api_parse_generation, which
 * tokenises the prompt, renders the chat template and compiles
 * response_format), /tokenize and /detokenize.  Input: byte 0 picks the
 * endpoint and one of four fixture models (a real engine each, opened once
 * on the CPU backend: llama, qwen2 (chatml), gemma3, gpt-oss (harmony));
 * the rest is the body, parsed as server.c parses it.  A request that
 * passes gets its response body made, with some released text. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "engine/chat.h"
#include "engine/toolcall.h"
#include "http/tools.h"
#include "engine/engine.h"
#include "fuzz_common.h"
#include "grammar/grammar.h"
#include "http/api.h"
#include "http/server.h"

static const char *const models[] = { "llama-f32", "qwen2-f32", "gemma3-f32", "gpt-oss-bf16" };
#define N_MODELS 4
static struct config cfg;
static struct server srv[N_MODELS];

static void setup(int m)
{
	if (!cfg.limits.max_tokens) {
		char cache[4200];
		snprintf(cache, sizeof(cache), "%s/cache", fuzz_dir());
		setenv("SMOKE_CACHE", cache, 1);
		config_init(&cfg);
		cfg.limits.max_tokens = 100;
		cfg.limits.default_max_tokens = 8;
	}
	char rel[256];
	snprintf(rel, sizeof(rel), "hf-models/%s", models[m]);
	char *dir = fuzz_fixture(rel);
	struct smk_err err = { 0 };
	struct engine *e;
	struct engine_opts eo = { .model_path = dir, .n_ctx = 256, .n_batch = 16,
				  .max_logits = 1, .n_threads = 1, .backend = BACKEND_CPU };
	if (engine_open(&e, &eo, &err)) {
		fprintf(stderr, "fuzz_api: %s: %s\n", dir, err.msg);
		abort();
	}
	free(dir);
	srv[m].cfg = &cfg;
	srv[m].e = e;
	srv[m].chat = chat_detect(e->model->gguf, e->tok);
	srv[m].t_wall = 1700000000;
	snprintf(srv[m].model_id, sizeof(srv[m].model_id), "%s", models[m]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const int m = (data[0] >> 2) % N_MODELS, route = data[0] & 3;
	if (!srv[m].e)
		setup(m);
	struct server *s = &srv[m];
	json_error_t jerr;
	json_t *root = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return 0;
	struct api_error e;
	memset(&e, 0, sizeof(e));
	char *body = NULL;
	if (route >= 2) {
		int status = route == 2 ? api_tokenize(s, root, &body, &e) : api_detokenize(s, root, &body, &e);
		if (status < 0)
			body = api_error_body(&e);
		free(body);
		json_decref(root);
		return 0;
	}
	struct hreq *r = calloc(1, sizeof(*r));
	r->srv = s;
	r->refs = 1;
	r->chat = route == 1;
	snprintf(r->id, sizeof(r->id), "fuzz");
	if (api_parse_generation(s, r, root, &e) == 0) {
		/* Some output as the worker releases it (harmony markers included),
		 * then the bodies the client would get. */
		static const char out[] = "<|channel|>analysis<|message|>hm<|end|><|start|>assistant<|channel|>final<|message|>ok";
		/* With tools, a call of the first one in the format's text. */
		char *call = tools_active(r) ? toolcall_call_text(s->chat, json_string_value(json_object_get(
				json_object_get(json_array_get(r->tools->tools, 0), "function"), "name")), "{\"a\": 1}") : NULL;
		if (call)
			api_take_text(r, call, strlen(call), -1);
		else
			api_take_text(r, out, sizeof(out) - 1, -1);
		free(call);
		api_end_text(r);
		r->res.n_gen = 3;
		r->done = true;
		for (json_t *d; tools_active(r) && (d = tools_stream_delta(r));)
			free(api_delta_event(r, d));
		free(api_generation_body(r));
		free(api_stream_chunk(r, 0, tools_content_end(r), 0, r->n_reason, 0, 0, api_finish(r), true, true));
	} else {
		free(api_error_body(&e));
	}
	r->job.grammar = grammar_free(r->job.grammar);
	free(r->prompt);
	for (int i = 0; i < WORKER_MAX_STOP; i++)
		free(r->stops[i]);
	free(r->text);
	free(r->reason);
	free(r->toks);
	free(r->tok_end);
	free(r->ev);
	tools_free(r->tools);
	free(r);
	json_decref(root);
	return 0;
}
