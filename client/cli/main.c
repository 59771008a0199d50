/* main.c - `smoke`, the command line client of smoked, on libsmoke.
 *
 *   smoke [--url URL] [--api-key KEY] COMMAND [ARGS...]
 *
 * Commands: complete, chat, health, stats, top, models, tokenize,
 * detokenize, version (see usage()).  $SMOKE_URL and $SMOKE_API_KEY are the
 * defaults of --url and --api-key.  Exit status: 0 success, 1 the request
 * failed (the message says why, naming the URL), 2 bad usage. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "smk_config.h"

#define MAX_STOP 4

static void usage(FILE *f)
{
	fputs("usage: smoke [--url URL] [--api-key KEY] [--timeout SECONDS] COMMAND [ARGS...]\n"
	      "\n"
	      "Commands:\n"
	      "  complete PROMPT [OPTIONS]   continue PROMPT (\"-\" or none: read stdin)\n"
	      "  chat MESSAGE [OPTIONS]      one user message, answered with the model's chat\n"
	      "                              template; streams unless --no-stream\n"
	      "  health                      print the daemon's state; exit 0 when ready\n"
	      "  stats                       GET /stats, pretty-printed JSON\n"
	      "  top [--once] [--interval S] live view of /stats (q or Ctrl-C quits)\n"
	      "  models                      the served model(s)\n"
	      "  tokenize TEXT [--no-special] the token ids of TEXT\n"
	      "  detokenize ID...            the text of token ids\n"
	      "  version                     the client's version (also --version)\n"
	      "\n"
	      "Generation options (complete, chat):\n"
	      "  -n, --max-tokens N   tokens to generate at most\n"
	      "  --temp T             temperature, 0 = greedy\n"
	      "  --top-p P, --top-k K, --min-p P, --repeat-penalty R\n"
	      "  --seed S             same seed, same text\n"
	      "  --stop TEXT          stop before TEXT (up to 4 times)\n"
	      "  --system TEXT        chat: a system message first\n"
	      "  --stream, --no-stream  print tokens as they come (default: complete no, chat yes)\n"
	      "\n"
	      "Environment: SMOKE_URL (default http://127.0.0.1:8080), SMOKE_API_KEY.\n"
	      "The generated text is printed as is, with a final newline only on a terminal.\n",
	      f);
}

static int bad_usage(const char *fmt, const char *arg)
{
	fputs("smoke: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\n(smoke --help for usage)\n", stderr);
	return 2;
}

static bool parse_double(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v))
		return false;
	*out = v;
	return true;
}

static bool parse_int(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return false;
	*out = v;
	return true;
}

/* The arguments of one command, after the global options came out. */
struct args {
	int argc;
	char **argv;
};

struct gen_opts {
	struct smoke_params p;
	const char *stops[MAX_STOP];
	const char *system;
	int stream;                  /* -1: the command's default */
	const char *text;            /* the prompt or message */
};

/* Parse generation options; returns 0, or 2 after a usage message. */
static int parse_gen(struct args *a, struct gen_opts *g, bool chat)
{
	smoke_params_init(&g->p);
	g->p.stop = g->stops;
	g->stream = -1;
	for (int i = 0; i < a->argc; i++) {
		const char *o = a->argv[i];
		const char *v = i + 1 < a->argc ? a->argv[i + 1] : NULL;
		bool ok = true;
		if (!strcmp(o, "--stream")) {
			g->stream = 1;
			continue;
		}
		if (!strcmp(o, "--no-stream")) {
			g->stream = 0;
			continue;
		}
		if (o[0] != '-' || !strcmp(o, "-")) {
			if (g->text)
				return bad_usage("one %s only (quote it)", chat ? "message" : "prompt");
			g->text = o;
			continue;
		}
		if (!v)
			return bad_usage("%s needs a value", o);
		if (!strcmp(o, "-n") || !strcmp(o, "--max-tokens"))
			ok = parse_int(v, &g->p.max_tokens);
		else if (!strcmp(o, "--temp") || !strcmp(o, "--temperature"))
			ok = parse_double(v, &g->p.temperature);
		else if (!strcmp(o, "--top-p"))
			ok = parse_double(v, &g->p.top_p);
		else if (!strcmp(o, "--top-k"))
			ok = parse_int(v, &g->p.top_k);
		else if (!strcmp(o, "--min-p"))
			ok = parse_double(v, &g->p.min_p);
		else if (!strcmp(o, "--repeat-penalty"))
			ok = parse_double(v, &g->p.repeat_penalty);
		else if (!strcmp(o, "--seed"))
			ok = parse_int(v, &g->p.seed);
		else if (!strcmp(o, "--stop")) {
			if (g->p.n_stop == MAX_STOP)
				return bad_usage("at most 4 --stop strings%s", "");
			g->stops[g->p.n_stop++] = v;
		} else if (!strcmp(o, "--system") && chat)
			g->system = v;
		else if (!strcmp(o, "--model"))
			g->p.model = v;
		else
			return bad_usage("unknown option '%s'", o);
		if (!ok)
			return bad_usage("bad number '%s'", v);
		i++;
	}
	return 0;
}

/* All of stdin, for a prompt given as "-" or not at all. */
static char *read_stdin(void)
{
	size_t n = 0, cap = 4096;
	char *s = malloc(cap);
	while (s) {
		size_t r = fread(s + n, 1, cap - n - 1, stdin);
		n += r;
		if (r == 0)
			break;
		if (cap - n - 1 == 0) {
			char *t = cap < ((size_t)1 << 30) ? realloc(s, cap * 2) : NULL;
			if (!t) {
				free(s);
				return NULL;
			}
			s = t;
			cap *= 2;
		}
	}
	if (s)
		s[n] = 0;
	return s;
}

static int on_chunk(const struct smoke_chunk *ch, void *user)
{
	(void)user;
	if (ch->text_len && fwrite(ch->text, 1, ch->text_len, stdout) != ch->text_len)
		return 1; /* stdout closed: stop generating */
	fflush(stdout);
	return 0;
}

static int fail(const struct smoke_error *e)
{
	fprintf(stderr, "smoke: %s\n", e->message);
	if (e->code == SMOKE_E_CONNECT)
		fputs("smoke: is smoked running there? (--url or SMOKE_URL)\n", stderr);
	else if (e->code == SMOKE_E_UNAUTHORIZED)
		fputs("smoke: give the key with --api-key or SMOKE_API_KEY\n", stderr);
	return 1;
}

static int cmd_generate(smoke_client *c, struct args *a, bool chat)
{
	struct gen_opts g;
	memset(&g, 0, sizeof(g));
	int rc = parse_gen(a, &g, chat);
	if (rc)
		return rc;
	char *owned = NULL;
	if (!g.text || !strcmp(g.text, "-")) {
		if (!g.text && isatty(STDIN_FILENO))
			return bad_usage("%s: give the text as an argument, or \"-\" to read stdin",
					 chat ? "chat" : "complete");
		if (!(g.text = owned = read_stdin())) {
			fputs("smoke: cannot read stdin\n", stderr);
			return 1;
		}
	}
	bool stream = g.stream < 0 ? chat : g.stream;
	struct smoke_message msgs[2];
	size_t n = 0;
	if (g.system)
		msgs[n++] = (struct smoke_message){ "system", g.system };
	msgs[n++] = (struct smoke_message){ "user", g.text };
	struct smoke_result *r = NULL;
	struct smoke_error e;
	if (stream)
		rc = chat ? smoke_chat_stream(c, msgs, n, &g.p, on_chunk, NULL, &r, &e)
			  : smoke_complete_stream(c, g.text, &g.p, on_chunk, NULL, &r, &e);
	else
		rc = chat ? smoke_chat(c, msgs, n, &g.p, &r, &e) : smoke_complete(c, g.text, &g.p, &r, &e);
	free(owned);
	if (rc == 0 && !stream)
		fwrite(r->text, 1, r->text_len, stdout);
	bool printed = r && r->text_len;
	smoke_result_free(r);
	if (printed && isatty(STDOUT_FILENO))
		fputc('\n', stdout);
	fflush(stdout);
	if (rc == SMOKE_E_ABORTED)
		return 1; /* stdout went away; nothing to report */
	return rc ? fail(&e) : 0;
}

static int cmd_health(smoke_client *c)
{
	char status[32];
	struct smoke_error e;
	int rc = smoke_health(c, status, sizeof(status), &e);
	if (rc == 0 || rc == SMOKE_E_UNAVAILABLE) {
		printf("%s: %s\n", smoke_client_url(c), status[0] ? status : "unavailable");
		return rc ? 1 : 0;
	}
	return fail(&e);
}

/* GET a JSON endpoint and pretty-print it. */
static int cmd_pretty(smoke_client *c, const char *path)
{
	char *text = NULL;
	struct smoke_error e;
	int rc = !strcmp(path, "/stats") ? smoke_stats_json(c, &text, &e) : smoke_models_json(c, &text, &e);
	if (rc)
		return fail(&e);
	json_t *root = json_loads(text, 0, NULL);
	char *pretty = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
	puts(pretty ? pretty : text);
	free(pretty);
	json_decref(root);
	smoke_free(text);
	return 0;
}

static int cmd_tokenize(smoke_client *c, struct args *a)
{
	const char *text = NULL;
	bool special = true;
	for (int i = 0; i < a->argc; i++) {
		if (!strcmp(a->argv[i], "--no-special"))
			special = false;
		else if (!text)
			text = a->argv[i];
		else
			return bad_usage("tokenize takes one TEXT (quote it)%s", "");
	}
	if (!text)
		return bad_usage("tokenize needs a TEXT%s", "");
	int32_t *ids;
	size_t n;
	struct smoke_error e;
	if (smoke_tokenize(c, text, special, special, &ids, &n, &e))
		return fail(&e);
	for (size_t i = 0; i < n; i++)
		printf("%s%d", i ? " " : "", ids[i]);
	putchar('\n');
	smoke_free(ids);
	return 0;
}

static int cmd_detokenize(smoke_client *c, struct args *a)
{
	if (a->argc == 0)
		return bad_usage("detokenize needs token ids%s", "");
	int32_t *ids = malloc((size_t)a->argc * sizeof(int32_t));
	if (!ids)
		return 1;
	for (int i = 0; i < a->argc; i++) {
		int64_t v;
		if (!parse_int(a->argv[i], &v) || v < 0 || v > INT32_MAX) {
			free(ids);
			return bad_usage("'%s' is not a token id", a->argv[i]);
		}
		ids[i] = (int32_t)v;
	}
	char *text;
	size_t len;
	struct smoke_error e;
	int rc = smoke_detokenize(c, ids, (size_t)a->argc, &text, &len, &e);
	free(ids);
	if (rc)
		return fail(&e);
	fwrite(text, 1, len, stdout);
	if (isatty(STDOUT_FILENO))
		putchar('\n');
	smoke_free(text);
	return 0;
}

int main(int argc, char **argv)
{
	const char *url = getenv("SMOKE_URL");
	const char *key = getenv("SMOKE_API_KEY");
	double timeout = 0;
	const char *cmd = NULL;
	struct args a = { 0, NULL };
	char **rest = calloc((size_t)argc + 1, sizeof(char *));
	if (!rest)
		return 1;
	a.argv = rest;
	/* Global options are recognised anywhere; the first other word is the
	 * command and the rest belong to it. */
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		if (!strcmp(o, "--version") || (!cmd && !strcmp(o, "version"))) {
			printf("smoke %s (libsmoke %s)\n", SMK_VERSION, smoke_version());
			free(rest);
			return 0;
		}
		if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
			usage(stdout);
			free(rest);
			return 0;
		}
		if (!strcmp(o, "--url") || !strcmp(o, "--api-key") || !strcmp(o, "--timeout")) {
			if (i + 1 >= argc) {
				free(rest);
				return bad_usage("%s needs a value", o);
			}
			const char *v = argv[++i];
			if (!strcmp(o, "--url"))
				url = v;
			else if (!strcmp(o, "--api-key"))
				key = v;
			else if (!parse_double(v, &timeout) || timeout < 0) {
				free(rest);
				return bad_usage("bad --timeout '%s'", v);
			}
			continue;
		}
		if (!strncmp(o, "--url=", 6)) {
			url = o + 6;
			continue;
		}
		if (!strncmp(o, "--api-key=", 10)) {
			key = o + 10;
			continue;
		}
		if (!cmd)
			cmd = o;
		else
			rest[a.argc++] = argv[i];
	}
	if (!cmd) {
		usage(stderr);
		free(rest);
		return 2;
	}
	smoke_client *c;
	struct smoke_error e;
	if (smoke_client_new(&c, url, key, &e)) {
		free(rest);
		return fail(&e);
	}
	smoke_client_set_timeouts(c, 10000, (long)(timeout * 1000));
	int rc;
	if (!strcmp(cmd, "complete"))
		rc = cmd_generate(c, &a, false);
	else if (!strcmp(cmd, "chat"))
		rc = cmd_generate(c, &a, true);
	else if (!strcmp(cmd, "health"))
		rc = a.argc ? bad_usage("health takes no arguments%s", "") : cmd_health(c);
	else if (!strcmp(cmd, "stats"))
		rc = a.argc ? bad_usage("stats takes no arguments%s", "") : cmd_pretty(c, "/stats");
	else if (!strcmp(cmd, "models"))
		rc = a.argc ? bad_usage("models takes no arguments%s", "") : cmd_pretty(c, "/v1/models");
	else if (!strcmp(cmd, "tokenize"))
		rc = cmd_tokenize(c, &a);
	else if (!strcmp(cmd, "detokenize"))
		rc = cmd_detokenize(c, &a);
	else if (!strcmp(cmd, "top")) {
		bool once = false;
		double interval = 1.0;
		rc = -1;
		for (int i = 0; i < a.argc && rc == -1; i++) {
			if (!strcmp(a.argv[i], "--once"))
				once = true;
			else if (!strcmp(a.argv[i], "--interval") && i + 1 < a.argc &&
				 parse_double(a.argv[i + 1], &interval) && interval >= 0.1 && interval <= 3600)
				i++;
			else
				rc = bad_usage("top: unknown or bad option '%s' (--once, --interval 0.1..3600)", a.argv[i]);
		}
		if (rc == -1)
			rc = cli_top(c, once, interval);
	} else {
		rc = bad_usage("unknown command '%s'", cmd);
	}
	smoke_client_free(c);
	free(rest);
	return rc;
}
