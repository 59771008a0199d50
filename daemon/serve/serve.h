/* serve.h - the daemon's lifecycle around the HTTP server.
 *
 * Listen first, answer /health with 503 "loading" while a loader thread
 * opens the engine and starts the worker (serve/options.c maps the config
 * onto them), then 200 and READY=1 to systemd.  The calling thread handles
 * SIGTERM/SIGINT (every other thread has them blocked), sweeps slow
 * connections and refreshes systemd's STATUS= line.  On a signal:
 * STOPPING=1, stop accepting connections, let in-flight requests finish for
 * limits.shutdown_grace seconds, cancel the rest (their streams end
 * cleanly), free everything, exit status 0.  A model that fails to load
 * ends the daemon with status 1 after saying why.
 */
#ifndef SMK_SERVE_SERVE_H
#define SMK_SERVE_SERVE_H

#include "config/config.h"

/* Run the daemon on model_path until SIGTERM/SIGINT.  cfg and model_path
 * must outlive the call.  Returns the process exit status. */
int serve_run(const struct config *cfg, const char *model_path);

#endif
