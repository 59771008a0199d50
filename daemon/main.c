/* smoked - the smoke inference daemon.
 *
 * Without an offline mode flag it serves HTTP (serve/serve.c).  Offline:
 * `smoked --model PATH --prompt TEXT` runs one generation and exits; the
 * continuation goes to stdout as it is generated and nothing else does;
 * speeds and diagnostics go to stderr.  `--perplexity FILE` and `--dump` as
 * before.  The command line and the config file are parsed in serve/cli.c.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "engine/engine.h"
#include "formats/model_file.h"
#include "serve/cli.h"
#include "serve/options.h"
#include "serve/serve.h"

static int emit_stdout(void *ctx, const char *text, size_t len, int32_t token)
{
	(void)ctx;
	(void)token;
	fwrite(text, 1, len, stdout);
	fflush(stdout);
	return 0;
}

static int read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "smoked: cannot open '%s': %s\n", path, strerror(errno));
		return -errno;
	}
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	size_t r;
	while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (!buf) {
		fprintf(stderr, "smoked: '%s' is too large (64 MiB at most) or memory ran out\n", path);
		return -ENOMEM;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* Tokenise text into a fresh array (*out, freed by the caller). */
static int tokenize_all(struct engine *e, const char *text, size_t len, bool add_special,
			int32_t **out, int *n_out, struct smk_err *err)
{
	size_t n = 0, cap = 6 * len + 2; /* the tokenizer's documented bound */
	int32_t *ids = malloc(sizeof(int32_t) * cap);
	if (!ids)
		return smk_fail(err, -ENOMEM, "out of memory for %zu tokens", cap);
	int rc = tokenizer_encode(e->tok, text, len, add_special, true, ids, cap, &n, err);
	if (rc) {
		free(ids);
		return rc;
	}
	if (n > INT_MAX) {
		free(ids);
		return smk_fail(err, -E2BIG, "text is too long");
	}
	*out = ids;
	*n_out = (int)n;
	return 0;
}

static int run_prompt(struct engine *e, const struct cli *c, struct smk_err *err)
{
	int32_t *ids = NULL;
	int n_ids = 0;
	int rc = tokenize_all(e, c->prompt, strlen(c->prompt), true, &ids, &n_ids, err);
	if (rc)
		return rc;
	struct kvcache *kv = NULL;
	struct sampler *s = NULL;
	int n_ctx = n_ids + c->n_predict;
	if (n_ctx > e->n_ctx) {
		rc = smk_fail(err, -ENOSPC, "prompt (%d tokens) + -n %d exceed the context of %d (--ctx)",
			      n_ids, c->n_predict, e->n_ctx);
		goto out;
	}
	if ((rc = kvcache_new(&kv, e->model, n_ctx > 0 ? n_ctx : 1, e->be, err)) ||
	    (rc = sampler_new(&s, e->model->hp.n_vocab, &c->sp, err)))
		goto out;
	struct gen_stats st;
	rc = engine_generate(e, kv, ids, n_ids, c->n_predict, s, emit_stdout, NULL, &st, err);
	if (rc)
		goto out;
	/* Only the continuation goes to stdout; a newline only to end the line
	 * on a terminal, so pipes get exactly the generated text. */
	if (isatty(STDOUT_FILENO))
		fputc('\n', stdout);
	fflush(stdout);
	fprintf(stderr, "smoked: prompt %d tokens in %.3f s (%.1f tok/s), generated %d tokens in %.3f s (%.1f tok/s)\n",
		st.n_prompt, st.prefill_s, st.prefill_s > 0 ? st.n_prompt / st.prefill_s : 0.0,
		st.n_gen, st.decode_s, st.decode_s > 0 ? st.n_gen / st.decode_s : 0.0);
out:
	sampler_free(s);
	kvcache_free(kv);
	free(ids);
	return rc;
}

static int run_perplexity(struct engine *e, const struct cli *c, struct smk_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc = read_file(c->ppl_file, &text, &len);
	if (rc)
		return smk_fail(err, rc, "cannot read %s", c->ppl_file);
	int32_t *ids = NULL;
	int n_ids = 0;
	rc = tokenize_all(e, text, len, true, &ids, &n_ids, err);
	free(text);
	if (rc)
		return rc;
	double ppl, t0 = smk_now();
	int n_scored, n_chunks;
	rc = engine_perplexity(e, ids, n_ids, c->ppl_ctx, &ppl, &n_scored, &n_chunks, err);
	free(ids);
	if (rc)
		return rc;
	double dt = smk_now() - t0;
	printf("%.6f\n", ppl);
	fprintf(stderr, "smoked: perplexity %.4f over %d chunks of %d (%d tokens scored, %d in file), %.1f s (%.1f tok/s)\n",
		ppl, n_chunks, c->ppl_ctx, n_scored, n_ids, dt, n_chunks * c->ppl_ctx / dt);
	return 0;
}

/* --stats on a mixture of experts: per MoE layer, the experts acquired and
 * how many were already in the compute tier, and how many are there now. */
static void print_expert_stats(struct engine *e, FILE *f)
{
	const int nl = e->model->hp.n_layer;
	struct wexpert_layer_stats *x = e->model->hp.n_expert > 0 ? calloc((size_t)nl, sizeof(*x)) : NULL;
	struct xpredict_layer_stats *pr = x ? calloc((size_t)nl, sizeof(*pr)) : NULL;
	const int n = pr ? wstore_expert_stats(e->ws, x, nl) : 0;
	const int np = n ? forward_expert_prediction(e->fwd, pr, nl) : 0;
	for (int i = 0; i < n; i++) {
		const uint64_t tok = forward_tokens(e->fwd);
		fprintf(f, "  experts layer %-3d acquired %llu, hits %llu (%.1f%%; RAM tier %.1f%%), resident %d of %d, read %.2f MiB a token, stalled %llu times (%.3f s)",
			x[i].layer, (unsigned long long)x[i].acquires, (unsigned long long)x[i].hits,
			x[i].acquires ? 100.0 * (double)x[i].hits / (double)x[i].acquires : 0.0,
			x[i].acquires ? 100.0 * (double)x[i].ram_hits / (double)x[i].acquires : 0.0,
			x[i].resident, x[i].n_expert,
			tok ? (double)x[i].bytes_read / (double)tok / (1 << 20) : 0.0,
			(unsigned long long)x[i].stalls, x[i].stall_s);
		if (i < np && pr[i].predicted)
			fprintf(f, "; predicted: precision %.1f%%, recall %.1f%% (history added %llu, %llu chosen)",
				100.0 * (double)pr[i].both / (double)pr[i].predicted,
				pr[i].chosen ? 100.0 * (double)pr[i].both / (double)pr[i].chosen : 0.0,
				(unsigned long long)pr[i].history, (unsigned long long)pr[i].history_both);
		fputc('\n', f);
	}
	free(x);
	free(pr);
}

static int run_offline(struct cli *c, const char *model_path)
{
	struct smk_err err = { 0 };
	if (c->mode == CLI_DUMP) {
		/* A Hugging Face directory dumps as the GGUF keys and tensors
		 * it translates into: what the model loader will see. */
		struct gguf *g;
		if (model_file_open(&g, model_path, &err)) {
			fprintf(stderr, "smoked: %s\n", err.msg);
			return 1;
		}
		gguf_dump(g, stdout);
		gguf_close(g);
		return 0;
	}
	if (sampler_params_check(&c->sp, &err)) {
		fprintf(stderr, "smoked: %s\n", err.msg);
		return 2;
	}
	struct run_options ro;
	options_from_config(&ro, &c->cfg, model_path, OPTIONS_OFFLINE);
	struct engine_opts *eo = &ro.engine;
	if (c->mode == CLI_PERPLEXITY) {
		eo->n_batch = eo->n_batch > 0 ? eo->n_batch : 64;
		eo->max_logits = eo->n_batch;
		if (eo->n_ctx < c->ppl_ctx)
			eo->n_ctx = c->ppl_ctx;
	}
	struct engine *e;
	double t0 = smk_now();
	if (engine_open(&e, eo, &err)) {
		fprintf(stderr, "smoked: %s\n", err.msg);
		return 1;
	}
	fprintf(stderr, "smoked: loaded %s (%s, %d layers, %.1f MiB of weights) in %.2f s, %d threads\n",
		model_path, e->model->name, e->model->hp.n_layer,
		(double)e->model->weight_bytes / (1 << 20), smk_now() - t0,
		e->be->limits.n_threads);
	fprintf(stderr, "smoked: %s\n", e->backend_note);
	char xnote[256];
	if (engine_expert_note(e, xnote, sizeof(xnote)))
		fprintf(stderr, "smoked: %s\n", xnote);
	FILE *trace = NULL;
	if (c->expert_trace) {
		if (!(trace = fopen(c->expert_trace, "w"))) {
			fprintf(stderr, "smoked: --trace-experts %s: %s\n", c->expert_trace, strerror(errno));
			engine_close(e);
			return 1;
		}
		if (forward_set_expert_trace(e->fwd, trace, &err)) {
			fprintf(stderr, "smoked: --trace-experts: %s\n", err.msg);
			fclose(trace);
			engine_close(e);
			return 1;
		}
	}
	int rc = c->mode == CLI_PERPLEXITY ? run_perplexity(e, c, &err) : run_prompt(e, c, &err);
	if (trace) {
		forward_set_expert_trace(e->fwd, NULL, NULL);
		if (fclose(trace) && !rc) {
			fprintf(stderr, "smoked: --trace-experts %s: %s\n", c->expert_trace, strerror(errno));
			rc = -EIO;
		}
	}
	if (rc)
		fprintf(stderr, "smoked: %s\n", err.msg);
	if (c->stats) {
		struct wstore_stats ws;
		wstore_get_stats(e->ws, &ws);
		wstore_stats_print(&ws, stderr);
		print_expert_stats(e, stderr);
	}
	engine_close(e);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	static struct cli c;  /* large (API keys, paths): not on the stack */
	struct smk_err err = { 0 };
	if (cli_parse(&c, argc, argv, &err)) {
		fprintf(stderr, "smoked: %s\n(smoked --help lists the options)\n", err.msg);
		return 2;
	}
	if (c.mode == CLI_DONE)
		return 0;
	/* The one place the model path is resolved, for both modes. */
	char model_buf[CONFIG_PATH_MAX];
	const char *model = c.cfg.model.path[0] ? c.cfg.model.path
						: cli_default_model(model_buf, sizeof(model_buf));
	if (c.mode == CLI_SERVE)
		return serve_run(&c.cfg, model);
	return run_offline(&c, model);
}
