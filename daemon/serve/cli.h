/* cli.h - smoked's command line: the offline modes (--prompt, --perplexity,
 * --dump) and the daemon's settings.
 *
 * Precedence: defaults < the --config file < flags, whatever the order of the
 * flags on the line (the file is read first, then the flags are applied in
 * order).  Every setting of config.h has a flag (config_help lists them), and
 * `--set section.key=value` sets any of them by name.
 */
#ifndef SMK_SERVE_CLI_H
#define SMK_SERVE_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "config/config.h"
#include "engine/sampler.h"
#include "util/err.h"

enum cli_mode {
	CLI_SERVE,       /* no offline mode given: run the HTTP daemon */
	CLI_PROMPT,      /* --prompt TEXT */
	CLI_PERPLEXITY,  /* --perplexity FILE */
	CLI_DUMP,        /* --dump */
	CLI_DONE,        /* --help, --version, --print-config: printed, exit 0 */
};

struct cli {
	enum cli_mode mode;
	struct config cfg;
	const char *config_path;        /* points into argv */
	const char *prompt;             /* points into argv */
	const char *ppl_file;           /* points into argv */
	int n_predict;                  /* -n, default 128 */
	int ppl_ctx;                    /* --ppl-ctx, default 512 */
	bool stats;                     /* --stats: weight statistics on stderr after the run */
	const char *expert_trace;       /* --trace-experts FILE (points into argv) */
	struct sampler_params sp;       /* offline sampling (--temp ...) */
};

/* Parse argv into c (argv must outlive c).  Prints --help/--version output to
 * stdout itself.  Returns 0, or -EINVAL with the reason in err (the caller
 * prints it with the usage hint and exits 2). */
int cli_parse(struct cli *c, int argc, char **argv, struct smk_err *err);

void cli_usage(FILE *f);

/* The model path when none is configured: $SMOKE_MODEL, else
 * ${SMOKE_CACHE:-$HOME/.cache/smoke}/models/<default model>. */
const char *cli_default_model(char *buf, size_t len);

#endif
