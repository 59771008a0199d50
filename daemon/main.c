/* smoked - the smoke inference daemon.
 *
 * Offline mode (this file, for now): `smoked --model PATH --prompt TEXT`
 * runs one generation and exits.  The continuation goes to stdout as it is
 * generated and nothing else does; speeds and diagnostics go to stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "model/gguf.h"
#include "smk_config.h"

#define DEFAULT_MODEL_NAME "gemma-3-270m-q4_k_m.gguf"

struct cli {
	struct engine_opts eo;
	const char *prompt;
	const char *ppl_file;
	int n_predict;
	int ppl_ctx;
	bool dump;
	bool no_special;
	struct sampler_params sp;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: smoked [--model PATH] --prompt TEXT [-n N] [--temp T] [--seed S]\n"
		"       smoked [--model PATH] --perplexity FILE [--ppl-ctx N]\n"
		"       smoked [--model PATH] --dump\n"
		"\n"
		"  --model PATH        GGUF model (default: $SMOKE_MODEL, else\n"
		"                      ${SMOKE_CACHE:-~/.cache/smoke}/models/" DEFAULT_MODEL_NAME ")\n"
		"  --prompt TEXT       generate a continuation of TEXT offline and exit\n"
		"  -n, --n-predict N   tokens to generate (default 128)\n"
		"  --temp T            temperature; 0 = greedy (default 0.8)\n"
		"  --top-k K           (default 40; 0 = off)\n"
		"  --top-p P           (default 0.95)\n"
		"  --min-p P           (default 0.05)\n"
		"  --repeat-penalty R  (default 1 = off)\n"
		"  --seed S            random seed (default 0); same seed, same text\n"
		"  --threads N         compute threads (default: all CPUs)\n"
		"  --ctx N             context positions (default 4096)\n"
		"  --batch N           prefill chunk (default 256)\n"
		"  --perplexity FILE   score FILE as llama-perplexity does and print PPL\n"
		"  --ppl-ctx N         perplexity chunk size (default 512)\n"
		"  --dump              print the model's metadata and tensor table\n"
		"  --version, --help\n");
}

/* Parse a whole decimal number in [lo, hi]; the message names the flag. */
static int parse_long(const char *flag, const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "smoked: %s '%s' is not a whole number in %ld..%ld\n", flag, s, lo, hi);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_float(const char *flag, const char *s, float *out)
{
	char *end;
	errno = 0;
	float v = strtof(s, &end);
	if (errno || end == s || *end) {
		fprintf(stderr, "smoked: %s '%s' is not a number\n", flag, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static const char *default_model(char *buf, size_t len)
{
	const char *env = getenv("SMOKE_MODEL");
	if (env && *env)
		return env;
	const char *cache = getenv("SMOKE_CACHE");
	if (cache && *cache)
		snprintf(buf, len, "%s/models/%s", cache, DEFAULT_MODEL_NAME);
	else
		snprintf(buf, len, "%s/.cache/smoke/models/%s",
			 getenv("HOME") ? getenv("HOME") : ".", DEFAULT_MODEL_NAME);
	return buf;
}

enum {
	OPT_TEMP = 256, OPT_TOPK, OPT_TOPP, OPT_MINP, OPT_REPEAT, OPT_SEED, OPT_THREADS,
	OPT_CTX, OPT_BATCH, OPT_PPL, OPT_PPL_CTX, OPT_DUMP, OPT_VERSION,
};

static int parse_args(int argc, char **argv, struct cli *c)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "n-predict", required_argument, NULL, 'n' },
		{ "temp", required_argument, NULL, OPT_TEMP },
		{ "top-k", required_argument, NULL, OPT_TOPK },
		{ "top-p", required_argument, NULL, OPT_TOPP },
		{ "min-p", required_argument, NULL, OPT_MINP },
		{ "repeat-penalty", required_argument, NULL, OPT_REPEAT },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "ctx", required_argument, NULL, OPT_CTX },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "perplexity", required_argument, NULL, OPT_PPL },
		{ "ppl-ctx", required_argument, NULL, OPT_PPL_CTX },
		{ "dump", no_argument, NULL, OPT_DUMP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	long v;
	int o;
	while ((o = getopt_long(argc, argv, "m:p:n:h", opts, NULL)) != -1) {
		switch (o) {
		case 'm': c->eo.model_path = optarg; break;
		case 'p': c->prompt = optarg; break;
		case 'n':
			if (parse_long("--n-predict", optarg, 0, 1 << 20, &v)) return -EINVAL;
			c->n_predict = (int)v;
			break;
		case OPT_TEMP: if (parse_float("--temp", optarg, &c->sp.temperature)) return -EINVAL; break;
		case OPT_TOPK:
			if (parse_long("--top-k", optarg, 0, INT_MAX, &v)) return -EINVAL;
			c->sp.top_k = (int)v;
			break;
		case OPT_TOPP: if (parse_float("--top-p", optarg, &c->sp.top_p)) return -EINVAL; break;
		case OPT_MINP: if (parse_float("--min-p", optarg, &c->sp.min_p)) return -EINVAL; break;
		case OPT_REPEAT:
			if (parse_float("--repeat-penalty", optarg, &c->sp.repeat_penalty)) return -EINVAL;
			break;
		case OPT_SEED: {
			char *end;
			errno = 0;
			unsigned long long s = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end) {
				fprintf(stderr, "smoked: --seed '%s' is not a non-negative whole number\n", optarg);
				return -EINVAL;
			}
			c->sp.seed = s;
			break;
		}
		case OPT_THREADS:
			if (parse_long("--threads", optarg, 1, 256, &v)) return -EINVAL;
			c->eo.n_threads = (int)v;
			break;
		case OPT_CTX:
			if (parse_long("--ctx", optarg, 16, 1 << 20, &v)) return -EINVAL;
			c->eo.n_ctx = (int)v;
			break;
		case OPT_BATCH:
			if (parse_long("--batch", optarg, 1, 4096, &v)) return -EINVAL;
			c->eo.n_batch = (int)v;
			break;
		case OPT_PPL: c->ppl_file = optarg; break;
		case OPT_PPL_CTX:
			if (parse_long("--ppl-ctx", optarg, 16, 1 << 16, &v)) return -EINVAL;
			c->ppl_ctx = (int)v;
			break;
		case OPT_DUMP: c->dump = true; break;
		case OPT_VERSION: printf("smoked %s\n", SMK_VERSION); exit(0);
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "smoked: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

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
	size_t n = 0, cap = len + 16;
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
	if ((rc = kvcache_new(&kv, e->model, n_ctx > 0 ? n_ctx : 1, err)) ||
	    (rc = sampler_new(&s, e->model->hp.n_vocab, &c->sp, err)))
		goto out;
	struct gen_stats st;
	rc = engine_generate(e, kv, ids, n_ids, c->n_predict, s, emit_stdout, NULL, &st, err);
	if (rc)
		goto out;
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
	char *text;
	size_t len;
	int rc = read_file(c->ppl_file, &text, &len);
	if (rc)
		return smk_fail(err, rc, "cannot read %s", c->ppl_file);
	int32_t *ids = NULL;
	int n_ids = 0;
	rc = tokenize_all(e, text, len, true, &ids, &n_ids, err);
	free(text);
	if (rc)
		return rc;
	double ppl, t0 = engine_now();
	int n_scored, n_chunks;
	rc = engine_perplexity(e, ids, n_ids, c->ppl_ctx, &ppl, &n_scored, &n_chunks, err);
	free(ids);
	if (rc)
		return rc;
	double dt = engine_now() - t0;
	printf("%.6f\n", ppl);
	fprintf(stderr, "smoked: perplexity %.4f over %d chunks of %d (%d tokens scored, %d in file), %.1f s (%.1f tok/s)\n",
		ppl, n_chunks, c->ppl_ctx, n_scored, n_ids, dt, n_chunks * c->ppl_ctx / dt);
	return 0;
}

int main(int argc, char **argv)
{
	struct cli c = { .n_predict = 128, .ppl_ctx = 512 };
	sampler_params_default(&c.sp);
	if (parse_args(argc, argv, &c))
		return 2;
	char model_buf[4096];
	if (!c.eo.model_path)
		c.eo.model_path = default_model(model_buf, sizeof(model_buf));

	struct smk_err err = { 0 };
	if (c.dump) {
		struct gguf *g;
		if (gguf_open(&g, c.eo.model_path, &err)) {
			fprintf(stderr, "smoked: %s\n", err.msg);
			return 1;
		}
		gguf_dump(g, stdout);
		gguf_close(g);
		return 0;
	}
	if (!c.prompt && !c.ppl_file) {
		fprintf(stderr, "smoked: nothing to do: give --prompt TEXT (the HTTP daemon is not built yet)\n");
		usage(stderr);
		return 2;
	}
	if (sampler_params_check(&c.sp, &err)) {
		fprintf(stderr, "smoked: %s\n", err.msg);
		return 2;
	}
	if (c.ppl_file) {
		c.eo.n_batch = c.eo.n_batch > 0 ? c.eo.n_batch : 64;
		c.eo.max_logits = c.eo.n_batch;
		if (c.eo.n_ctx < c.ppl_ctx)
			c.eo.n_ctx = c.ppl_ctx;
	}

	struct engine *e;
	double t0 = engine_now();
	if (engine_open(&e, &c.eo, &err)) {
		fprintf(stderr, "smoked: %s\n", err.msg);
		return 1;
	}
	fprintf(stderr, "smoked: loaded %s (%s, %d layers, %.1f MiB of weights) in %.2f s, %d threads\n",
		c.eo.model_path, e->model->name, e->model->hp.n_layer,
		(double)e->model->weight_bytes / (1 << 20), engine_now() - t0,
		e->be->limits.n_threads);
	int rc = c.ppl_file ? run_perplexity(e, &c, &err) : run_prompt(e, &c, &err);
	if (rc)
		fprintf(stderr, "smoked: %s\n", err.msg);
	engine_close(e);
	return rc ? 1 : 0;
}
