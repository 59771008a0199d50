/* cli.c - getopt_long over a table built from the offline flags and the
 * settings table of config.c. */
#include "serve/cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "smk_config.h"

#define DEFAULT_MODEL_NAME "gemma-3-270m-q4_k_m.gguf"

void cli_usage(FILE *f)
{
	fprintf(f,
		"usage: smoked [--config FILE] [SETTINGS...]          serve HTTP (the daemon)\n"
		"       smoked [--model PATH] --prompt TEXT [-n N] [--temp T] [--seed S]\n"
		"       smoked [--model PATH] --perplexity FILE [--ppl-ctx N]\n"
		"       smoked [--model PATH] --dump\n"
		"\n"
		"Offline modes:\n"
		"  --prompt TEXT       generate a continuation of TEXT offline and exit\n"
		"  -n, --n-predict N   tokens to generate (default 128)\n"
		"  --temp T            temperature; 0 = greedy (default 0.8)\n"
		"  --top-k K           (default 40; 0 = off)\n"
		"  --top-p P           (default 0.95)\n"
		"  --min-p P           (default 0.05)\n"
		"  --repeat-penalty R  (default 1 = off)\n"
		"  --seed S            random seed (default 0); same seed, same text\n"
		"  --perplexity FILE   score FILE as llama-perplexity does and print PPL\n"
		"  --ppl-ctx N         perplexity chunk size (default 512)\n"
		"  --dump              print the model's metadata and tensor table\n"
		"  --stats             after --prompt/--perplexity, print the weight hierarchy's statistics\n"
		"  --trace-experts FILE with --prompt/--perplexity on a mixture-of-experts model, write\n"
		"                      every token's routing to FILE (docs/expert-trace.md)\n"
		"\n"
		"Settings (file keys in docs/configuration.md; flags override the file):\n"
		"  --config FILE                  read settings from FILE (INI style)\n"
		"  --set KEY=VALUE                set any setting by its dotted name\n"
		"  --print-config                 print the effective settings and exit\n");
	config_help(f);
	fprintf(f,
		"\n  The model defaults to $SMOKE_MODEL, else\n"
		"  ${SMOKE_CACHE:-~/.cache/smoke}/models/" DEFAULT_MODEL_NAME ".\n"
		"  --version, --help\n");
}

const char *cli_default_model(char *buf, size_t len)
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

/* Parse a whole decimal number in [lo, hi]; the message names the flag. */
static int parse_long(const char *flag, const char *s, long lo, long hi, long *out,
		      struct smk_err *err)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return smk_fail(err, -EINVAL, "%s '%s' is not a whole number in %ld..%ld", flag, s, lo, hi);
	*out = v;
	return 0;
}

static int parse_float(const char *flag, const char *s, float *out, struct smk_err *err)
{
	char *end;
	errno = 0;
	float v = strtof(s, &end);
	if (errno || end == s || *end)
		return smk_fail(err, -EINVAL, "%s '%s' is not a number", flag, s);
	*out = v;
	return 0;
}

enum {
	OPT_TEMP = 256, OPT_TOPK, OPT_TOPP, OPT_MINP, OPT_REPEAT, OPT_SEED,
	OPT_PPL, OPT_PPL_CTX, OPT_DUMP, OPT_VERSION, OPT_CONFIG, OPT_SET, OPT_PRINT_CONFIG, OPT_STATS,
	OPT_EXPERT_TRACE,
	OPT_KEY_BASE = 1024,   /* + index in the settings table */
};

static const struct option fixed_opts[] = {
	{ "prompt", required_argument, NULL, 'p' },
	{ "n-predict", required_argument, NULL, 'n' },
	{ "temp", required_argument, NULL, OPT_TEMP },
	{ "top-k", required_argument, NULL, OPT_TOPK },
	{ "top-p", required_argument, NULL, OPT_TOPP },
	{ "min-p", required_argument, NULL, OPT_MINP },
	{ "repeat-penalty", required_argument, NULL, OPT_REPEAT },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "perplexity", required_argument, NULL, OPT_PPL },
	{ "ppl-ctx", required_argument, NULL, OPT_PPL_CTX },
	{ "dump", no_argument, NULL, OPT_DUMP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "set", required_argument, NULL, OPT_SET },
	{ "print-config", no_argument, NULL, OPT_PRINT_CONFIG },
	{ "stats", no_argument, NULL, OPT_STATS },
	{ "trace-experts", required_argument, NULL, OPT_EXPERT_TRACE },
	{ "expert-trace", required_argument, NULL, OPT_EXPERT_TRACE }, /* older spelling */
	{ "help", no_argument, NULL, 'h' },
};
#define N_FIXED ((int)(sizeof(fixed_opts) / sizeof(fixed_opts[0])))
#define MAX_KEYS 64

/* A settings flag seen on the line, applied after the file is read. */
struct pending {
	int key;            /* index in the settings table, or -1 for --set */
	const char *arg;    /* NULL: a bool flag without "=value" */
};

static int apply_pending(struct cli *c, const struct pending *p, struct smk_err *err)
{
	char origin[80];
	if (p->key < 0) {
		const char *eq = strchr(p->arg, '=');
		if (!eq || eq == p->arg)
			return smk_fail(err, -EINVAL, "--set '%s': expected KEY=VALUE, e.g. memory.ram_cache=2GB",
					p->arg);
		char key[96];
		if ((size_t)(eq - p->arg) >= sizeof(key))
			return smk_fail(err, -EINVAL, "--set '%s': key too long", p->arg);
		snprintf(key, sizeof(key), "%.*s", (int)(eq - p->arg), p->arg);
		return config_set(&c->cfg, key, eq + 1, "--set", err);
	}
	const char *flag;
	const char *name = config_key_name(p->key, &flag, NULL);
	snprintf(origin, sizeof(origin), "--%s", flag);
	return config_set(&c->cfg, name, p->arg ? p->arg : "true", origin, err);
}

int cli_parse(struct cli *c, int argc, char **argv, struct smk_err *err)
{
	struct option opts[N_FIXED + MAX_KEYS + 1];
	int n = 0;
	memcpy(opts, fixed_opts, sizeof(fixed_opts));
	n = N_FIXED;
	const char *flag;
	bool is_bool;
	for (int i = 0; config_key_name(i, &flag, &is_bool); i++) {
		if (n >= N_FIXED + MAX_KEYS)
			abort();  /* the table outgrew MAX_KEYS: a programming error */
		opts[n++] = (struct option){ flag, is_bool ? optional_argument : required_argument,
					     NULL, OPT_KEY_BASE + i };
	}
	opts[n] = (struct option){ 0 };

	memset(c, 0, sizeof(*c));
	c->n_predict = 128;
	c->ppl_ctx = 512;
	sampler_params_default(&c->sp);
	config_init(&c->cfg);

	struct pending *pend = calloc((size_t)argc + 1, sizeof(*pend));
	if (!pend)
		return smk_fail(err, -ENOMEM, "out of memory");
	int n_pend = 0, rc = 0, o;
	bool dump = false, version = false, help = false, print_config = false;
	long v = 0;
	optind = 0;   /* GNU: re-initialise, so cli_parse can run more than once */
	opterr = 0;   /* errors are reported through err */
	while (rc == 0 && (o = getopt_long(argc, argv, "m:p:n:h", opts, NULL)) != -1) {
		switch (o) {
		case 'm':  /* -m is the short form of --model */
			for (int i = 0; config_key_name(i, &flag, NULL); i++)
				if (!strcmp(flag, "model"))
					pend[n_pend++] = (struct pending){ i, optarg };
			break;
		case 'p': c->prompt = optarg; break;
		case 'n':
			if (!(rc = parse_long("--n-predict", optarg, 0, 1 << 20, &v, err)))
				c->n_predict = (int)v;
			break;
		case OPT_TEMP: rc = parse_float("--temp", optarg, &c->sp.temperature, err); break;
		case OPT_TOPK:
			if (!(rc = parse_long("--top-k", optarg, 0, INT_MAX, &v, err)))
				c->sp.top_k = (int)v;
			break;
		case OPT_TOPP: rc = parse_float("--top-p", optarg, &c->sp.top_p, err); break;
		case OPT_MINP: rc = parse_float("--min-p", optarg, &c->sp.min_p, err); break;
		case OPT_REPEAT: rc = parse_float("--repeat-penalty", optarg, &c->sp.repeat_penalty, err); break;
		case OPT_SEED: {
			char *end;
			errno = 0;
			unsigned long long s = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-')
				rc = smk_fail(err, -EINVAL, "--seed '%s' is not a non-negative whole number", optarg);
			else
				c->sp.seed = s;
			break;
		}
		case OPT_PPL: c->ppl_file = optarg; break;
		case OPT_PPL_CTX:
			if (!(rc = parse_long("--ppl-ctx", optarg, 16, 1 << 16, &v, err)))
				c->ppl_ctx = (int)v;
			break;
		case OPT_DUMP: dump = true; break;
		case OPT_VERSION: version = true; break;
		case OPT_CONFIG: c->config_path = optarg; break;
		case OPT_SET: pend[n_pend++] = (struct pending){ -1, optarg }; break;
		case OPT_PRINT_CONFIG: print_config = true; break;
		case OPT_STATS: c->stats = true; break;
		case OPT_EXPERT_TRACE: c->expert_trace = optarg; break;
		case 'h': help = true; break;
		case '?':
			if (optopt)
				rc = smk_fail(err, -EINVAL, "option -%c is unknown or needs an argument", optopt);
			else
				rc = smk_fail(err, -EINVAL, "option '%s' is unknown or needs an argument",
					      argv[optind - 1]);
			break;
		default:
			if (o >= OPT_KEY_BASE)
				pend[n_pend++] = (struct pending){ o - OPT_KEY_BASE, optarg };
			else
				rc = smk_fail(err, -EINVAL, "unexpected option");
			break;
		}
	}
	if (rc == 0 && optind < argc)
		rc = smk_fail(err, -EINVAL, "unexpected argument '%s'", argv[optind]);
	if (rc == 0 && (help || version)) {
		if (help)
			cli_usage(stdout);
		else
			printf("smoked %s\n", SMK_VERSION);
		c->mode = CLI_DONE;
		free(pend);
		return 0;
	}
	if (rc == 0 && c->config_path)
		rc = config_load_file(&c->cfg, c->config_path, err);
	for (int i = 0; rc == 0 && i < n_pend; i++)
		rc = apply_pending(c, &pend[i], err);
	free(pend);
	if (rc == 0)
		rc = config_validate(&c->cfg, err);
	if (rc)
		return rc;

	int modes = !!c->prompt + !!c->ppl_file + dump;
	if (modes > 1)
		return smk_fail(err, -EINVAL, "--prompt, --perplexity and --dump exclude each other");
	c->mode = c->prompt ? CLI_PROMPT : c->ppl_file ? CLI_PERPLEXITY : dump ? CLI_DUMP : CLI_SERVE;
	if (c->expert_trace && c->mode != CLI_PROMPT && c->mode != CLI_PERPLEXITY)
		return smk_fail(err, -EINVAL, "--trace-experts goes with --prompt or --perplexity");
	if (print_config) {
		config_print(&c->cfg, stdout);
		c->mode = CLI_DONE;
	}
	return 0;
}
