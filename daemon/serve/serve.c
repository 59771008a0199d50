/* serve.c - load, serve, drain: the daemon's lifecycle (serve.h). */
#include "serve/serve.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "http/server.h"
#include "serve/options.h"
#include "serve/sdnotify.h"
#include "smk_config.h"
#include "util/clock.h"
#include "util/log.h"

/* The loader thread: engine, worker, chat format; then publish to HTTP. */
static void *loader_main(void *arg)
{
	struct server *s = arg;
	const struct config *c = s->cfg;
	struct run_options ro;
	options_from_config(&ro, c, s->model_path, OPTIONS_DAEMON);
	struct smk_err err = { 0 };
	double t0 = smk_now();
	struct engine *e;
	if (engine_open(&e, &ro.engine, &err)) {
		log_error("cannot load the model: %s", err.msg);
		sd_notify_status("failed to load %s", s->model_path);
		server_fail(s);
		return NULL;
	}
	uint64_t one = kvcache_bytes(e->model, 1);
	if (ro.worker.kv_budget < one * 2) {
		log_error("limits.kv_budget (%llu bytes) is below the KV cache of two positions (%llu bytes)",
			  (unsigned long long)ro.worker.kv_budget, (unsigned long long)(one * 2));
		engine_close(e);
		server_fail(s);
		return NULL;
	}
	struct worker *w;
	if (worker_new(&w, e, &ro.worker, &err)) {
		log_error("%s", err.msg);
		engine_close(e);
		server_fail(s);
		return NULL;
	}
	enum chat_format chat = chat_detect(e->model->gguf, e->tok);
	log_info("loaded %s (%s, %d layers, %.1f MiB of weights, context %d, chat format %s) in %.2f s, %d threads",
		 s->model_path, e->model->name, e->model->hp.n_layer,
		 (double)e->model->weight_bytes / (1 << 20), e->n_ctx, chat_format_name(chat),
		 smk_now() - t0, e->be->limits.n_threads);
	log_info("%s", e->backend_note);
	char xnote[256];
	if (engine_expert_note(e, xnote, sizeof(xnote)))
		log_info("%s", xnote);
	log_info("KV cache: %.1f KiB per position, budget %.1f MiB (%d positions)",
		 (double)one / 1024, (double)ro.worker.kv_budget / (1 << 20),
		 (int)(ro.worker.kv_budget / one));
	server_publish(s, e, w, chat);
	sd_notify_send("READY=1");
	sd_notify_status("serving %s on %s port %d", s->model_id, c->server.host, s->port);
	log_info("ready: model '%s' at http://%s%s%s:%d/", s->model_id,
		 strchr(c->server.host, ':') ? "[" : "", c->server.host,
		 strchr(c->server.host, ':') ? "]" : "", s->port);
	return NULL;
}

/* SIGUSR1: one line of what the daemon is doing. */
static void log_status(struct server *s)
{
	int state = atomic_load(&s->state);
	if (state != SERVER_READY) {
		log_info("SIGUSR1: status: %s, %llu connections open",
			 state == SERVER_LOADING ? "loading" : "stopping",
			 (unsigned long long)atomic_load(&s->conns_open));
		return;
	}
	struct worker_stats st;
	worker_get_stats(s->w, &st);
	log_info("SIGUSR1: status: serving %s, %llu connections open, %d active, %d queued, "
		 "%llu requests admitted, %llu completed, %llu tokens generated", s->model_id,
		 (unsigned long long)atomic_load(&s->conns_open), st.active, st.queue_depth,
		 (unsigned long long)st.admitted, (unsigned long long)st.completed,
		 (unsigned long long)st.gen_tokens);
}

/* One tick of the main thread: wait up to 250 ms for a signal (SIGUSR1 logs
 * a status line, SIGUSR2 is ignored), then sweep the connections and refresh
 * systemd's status line.  Returns the stopping signal that arrived (SIGTERM,
 * SIGINT, SIGHUP), else 0. */
static int main_tick(struct server *s, const sigset_t *sigs, double *t_status)
{
	/* A short tick: the sweep's bounds are seconds. */
	struct timespec tick = { 0, 250 * 1000 * 1000 };
	int got = sigtimedwait(sigs, NULL, &tick), sig = 0;
	/* SIGHUP drains like SIGTERM (a terminal that went away, or a
	 * supervisor's restart: the log goes to stderr, so there is no file
	 * to reopen); SIGUSR1 logs a status line; SIGUSR2 is ignored.  None
	 * of them may end the process on the spot. */
	if (got == SIGTERM || got == SIGINT || got == SIGHUP)
		sig = got;
	else if (got == SIGUSR1)
		log_status(s);
	else if (got == SIGUSR2)
		log_info("SIGUSR2: ignored");
	if (atomic_load(&s->state) == SERVER_FAILED)
		return sig;
	server_sweep(s);
	if (atomic_load(&s->state) == SERVER_READY && smk_now() - *t_status >= 5) {
		*t_status = smk_now();
		struct worker_stats st;
		worker_get_stats(s->w, &st);
		sd_notify_status("serving %s: %d active, %d queued, %llu tokens generated",
				 s->model_id, st.active, st.queue_depth, (unsigned long long)st.gen_tokens);
	}
	return sig;
}

/* limits.drain_delay: /health says 503 "draining" for `delay` seconds while
 * every request that still arrives is served as before, so that a load
 * balancer polling /health takes this replica out before its listener
 * closes (a balancer that learns of the stop only from refused connections
 * would fail or retry the requests in between).  A second stopping signal
 * cuts the delay short. */
static void drain_delay(struct server *s, const sigset_t *sigs, double delay, double *t_status)
{
	log_info("draining: /health answers 503 for %g s while requests are still served", delay);
	sd_notify_status("draining %s: /health says 503 for %g s", s->model_id, delay);
	server_drain(s);
	const double until = smk_now() + delay;
	while (smk_now() < until) {
		int sig = main_tick(s, sigs, t_status);
		if (sig) {
			log_info("%s: the drain delay is cut short", strsignal(sig));
			return;
		}
	}
}

/* model.id, or the file name without ".gguf". */
static void model_id_from_path(char *out, size_t len, const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t n = strlen(base);
	if (n > 5 && !strcmp(base + n - 5, ".gguf"))
		n -= 5;
	snprintf(out, len, "%.*s", (int)n, base);
}

int serve_run(const struct config *cfg, const char *model_path)
{
	static struct server srv;  /* one per process; zero-initialised */
	struct server *s = &srv;
	log_init(cfg->server.log_level);
	char model_id[sizeof(s->model_id)];
	if (cfg->model.id[0])
		snprintf(model_id, sizeof(model_id), "%s", cfg->model.id);
	else
		model_id_from_path(model_id, sizeof(model_id), model_path);

	/* Signals are handled by this thread alone (sigtimedwait), so every
	 * thread started below inherits the blocked mask. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGUSR2);
	sigaddset(&sigs, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	struct smk_err err = { 0 };
	if (server_listen(s, cfg, model_path, model_id, &err)) {
		log_error("%s", err.msg);
		return 1;
	}
	log_info("smoked %s listening on %s port %d; loading %s", SMK_VERSION, cfg->server.host,
		 s->port, s->model_path);
	if (cfg->server.n_api_keys)
		log_info("authentication: on (%d API key%s)", cfg->server.n_api_keys,
			 cfg->server.n_api_keys == 1 ? "" : "s");
	else
		log_info("authentication: off (no server.api_key or server.api_key_file): "
			 "anyone who can reach %s port %d may use the API", cfg->server.host, s->port);
	sd_notify_status("loading %s", s->model_path);

	pthread_t loader;
	if (pthread_create(&loader, NULL, loader_main, s)) {
		log_error("cannot start the loader thread");
		server_stop(s, 0);
		return 1;
	}
	int exit_code = 0, sig = 0;
	sigdelset(&sigs, SIGPIPE);
	double t_status = 0;
	while (!sig) {
		sig = main_tick(s, &sigs, &t_status);
		if (atomic_load(&s->state) == SERVER_FAILED) {
			exit_code = 1;
			break;
		}
	}

	/* Shutdown: report draining (balancers stop sending, requests that
	 * still arrive are served), stop accepting, drain, stop. */
	if (sig)
		log_info("%s: stopping (grace %g s)", strsignal(sig), cfg->limits.shutdown_grace);
	sd_notify_send("STOPPING=1");
	if (sig && cfg->limits.drain_delay > 0 && atomic_load(&s->state) == SERVER_READY)
		drain_delay(s, &sigs, cfg->limits.drain_delay, &t_status);
	pthread_join(loader, NULL);
	server_stop(s, cfg->limits.shutdown_grace);
	if (s->w) {
		struct worker_stats st;
		worker_get_stats(s->w, &st);
		log_info("stopped: %llu requests completed, %llu cancelled, %llu timed out, %llu failed",
			 (unsigned long long)st.completed, (unsigned long long)st.cancelled,
			 (unsigned long long)st.timeouts, (unsigned long long)st.failed);
	} else {
		log_info("stopped");
	}
	worker_free(s->w);
	engine_close(s->e);
	return exit_code;
}
