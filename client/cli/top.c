/* top.c - `smoke top`: a live view of the daemon's GET /stats.
 *
 * Every interval the view fetches /stats and redraws one frame: requests,
 * queue, active sequences, KV-cache use, token counts and rates, latency
 * histograms, connections, and the weight hierarchy.  Plain ANSI: the frame
 * is drawn from the top-left corner on the alternate screen, each line
 * cleared to its end, so nothing flickers and the shell's screen comes back
 * on exit.  q (or Q, or Ctrl-C, or SIGTERM) quits; the terminal's settings
 * are restored on every way out.  --once prints one frame without any
 * terminal control, for scripts and tests.
 *
 * The weight hierarchy (issue 4) reports later under "hierarchy" (or
 * "weights") in /stats.  Its shape is not fixed yet, so the view reads it
 * generically:
 *   "hierarchy": {
 *     "tiers": [ {"name": "ram", "used": .., "budget": .., "hits": .., "misses": ..,
 *                 "evictions": .., "bytes_in": .., "peak": .., "bandwidth": ..}, ... ]
 *              (or an object keyed by tier name),
 *     "stalls": .., "stall_s": ..,                   numbers: one "all tiers" line
 *     "prefetch": {"issued": .., "used": .., ...}    an object: one line of its scalars
 *   }
 * A tier row's columns take the first key present among a few synonyms
 * (used/used_bytes, budget/budget_bytes, bytes_in/bytes_moved...; see the
 * lists below); the tier's other figures follow on the next line.  Byte
 * counts are keys containing "bytes", and a tier's used/budget/peak;
 * "bandwidth" is bytes/s.  tests/integration/test_client_cli.py draws such
 * a /stats.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t quit_signal;

static void on_signal(int sig)
{
	quit_signal = sig;
}

struct top {
	smoke_client *c;
	bool once;
	bool ansi;               /* stdout is a terminal and the view is live */
	bool have_prev;
	double prev_t, prev_gen, prev_prompt, prev_done;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- formatting ---- */

const char *cli_bytes(char *buf, unsigned long n, double b)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	int u = 0;
	if (!isfinite(b) || b < 0) {
		snprintf(buf, n, "-");
		return buf;
	}
	while (b >= 1024 && u < 5) {
		b /= 1024;
		u++;
	}
	snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
	return buf;
}

static const char *secs(char *buf, size_t n, double s)
{
	if (!isfinite(s) || s < 0)
		snprintf(buf, n, "-");
	else if (s < 1e-3)
		snprintf(buf, n, "%.0f us", s * 1e6);
	else if (s < 1)
		snprintf(buf, n, "%.1f ms", s * 1e3);
	else if (s < 120)
		snprintf(buf, n, "%.2f s", s);
	else
		snprintf(buf, n, "%dh%02dm%02ds", (int)(s / 3600), (int)fmod(s / 60, 60), (int)fmod(s, 60));
	return buf;
}

/* The number at a dotted path ("requests.admitted"), NAN if absent. */
static double num(json_t *root, const char *path)
{
	char key[64];
	json_t *v = root;
	while (v && *path) {
		size_t n = strcspn(path, ".");
		if (n >= sizeof(key))
			return NAN;
		memcpy(key, path, n);
		key[n] = 0;
		v = json_object_get(v, key);
		path += n + (path[n] == '.');
	}
	return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *count(char *buf, size_t n, double v)
{
	if (isfinite(v))
		snprintf(buf, n, "%.0f", v);
	else
		snprintf(buf, n, "-");
	return buf;
}

/* One line of the frame: with ANSI, cleared to its end. */
static void line(FILE *f, const struct top *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void line(FILE *f, const struct top *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputs(t->ansi ? "\033[K\n" : "\n", f);
}

/* mean and a bucket bound for the q-quantile of a Histogram (cumulative
 * buckets {le, count}): "mean 12.0 ms, p50 <= 25.0 ms". */
static void histo(char *out, size_t n, json_t *h)
{
	double cnt = num(h, "count"), sum = num(h, "sum");
	if (!isfinite(cnt) || cnt <= 0 || !isfinite(sum)) {
		snprintf(out, n, "-");
		return;
	}
	char m[32], p50[32] = "-", p95[32] = "-";
	secs(m, sizeof(m), sum / cnt);
	json_t *b = json_object_get(h, "buckets");
	const double qs[2] = { 0.5, 0.95 };
	char *dst[2] = { p50, p95 };
	for (int q = 0; q < 2; q++) {
		for (size_t i = 0; i < json_array_size(b); i++) {
			json_t *e = json_array_get(b, i);
			double c = num(e, "count");
			if (isfinite(c) && c >= qs[q] * cnt) {
				json_t *le = json_object_get(e, "le");
				if (json_is_number(le))
					secs(dst[q], 32, json_number_value(le));
				else
					snprintf(dst[q], 32, "inf");
				break;
			}
		}
	}
	snprintf(out, n, "mean %s (p50 <= %s, p95 <= %s)", m, p50, p95);
}

/* ---- the weight hierarchy ---- */

/* Whether a figure is a byte count: "*bytes*" anywhere; inside a tier also
 * its sizes (in a prefetch block, "used" is a count). */
static bool is_bytes_key(const char *k, bool tier)
{
	return strstr(k, "bytes") || (tier && (!strcmp(k, "budget") || !strcmp(k, "used") ||
					       !strcmp(k, "capacity") || !strcmp(k, "peak")));
}

static bool in_list(const char *k, const char *const *list)
{
	for (int i = 0; list && list[i]; i++)
		if (!strcmp(k, list[i]))
			return true;
	return false;
}

/* "name value" of one scalar into buf; false for objects and arrays. */
static bool pair(char *buf, size_t n, const char *k, json_t *v, bool tier)
{
	char val[48];
	if (json_is_number(v)) {
		double x = json_number_value(v);
		if (strstr(k, "bandwidth")) {
			cli_bytes(val, sizeof(val) - 2, x);
			strcat(val, "/s");
		} else if (is_bytes_key(k, tier)) {
			cli_bytes(val, sizeof(val), x);
		} else if (x == floor(x) && fabs(x) < 1e15) {
			snprintf(val, sizeof(val), "%.0f", x);
		} else {
			snprintf(val, sizeof(val), "%.3g", x);
		}
	} else if (json_is_string(v)) {
		snprintf(val, sizeof(val), "%.40s", json_string_value(v));
	} else if (json_is_boolean(v)) {
		snprintf(val, sizeof(val), "%s", json_is_true(v) ? "yes" : "no");
	} else {
		return false;
	}
	snprintf(buf, n, "%.40s %s", k, val);
	return true;
}

/* The scalar members of o (but those in skip) as "name value" pairs,
 * wrapped to about 100 columns; label heads the first line. */
static void pairs(FILE *f, const struct top *t, const char *label, json_t *o, const char *const *skip,
		  bool tier)
{
	char out[160], item[96];
	size_t at = 0;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		if (in_list(k, skip) || !pair(item, sizeof(item), k, v, tier))
			continue;
		size_t len = strlen(item);
		if (at && at + 2 + len > 100) {
			line(f, t, "  %-10.10s %s", label, out);
			label = "";
			at = 0;
		}
		at += (size_t)snprintf(out + at, sizeof(out) - at, "%s%s", at ? "  " : "", item);
		if (at >= sizeof(out))
			at = sizeof(out) - 1;
	}
	if (at)
		line(f, t, "  %-10.10s %s", label, out);
}

/* The first number among the synonyms, NAN if none. */
static double pick(json_t *o, const char *const *keys)
{
	for (int i = 0; keys[i]; i++) {
		json_t *v = json_object_get(o, keys[i]);
		if (json_is_number(v))
			return json_number_value(v);
	}
	return NAN;
}

/* Tier columns: the first key present among each list of synonyms. */
static const char *const used_k[] = { "used_bytes", "bytes_used", "used", "resident_bytes", NULL };
static const char *const budget_k[] = { "budget_bytes", "budget", "capacity_bytes", "capacity", NULL };
static const char *const hits_k[] = { "hits", NULL };
static const char *const miss_k[] = { "misses", NULL };
static const char *const evict_k[] = { "evictions", "evicted", NULL };
static const char *const moved_k[] = { "bytes_in", "bytes_moved", "moved_bytes", "read_bytes", NULL };

/* Keys shown as columns, or naming the tier: not repeated below the row. */
static bool is_column(const char *k)
{
	const char *const *lists[] = { used_k, budget_k, hits_k, miss_k, evict_k, moved_k };
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		if (in_list(k, lists[i]))
			return true;
	return !strcmp(k, "name") || !strcmp(k, "tier");
}

static void tier_row(FILE *f, const struct top *t, const char *name, json_t *tier)
{
	char u[24], b[24], h[24], m[24], e[24], mv[24], rate[16] = "-";
	double hits = pick(tier, hits_k), miss = pick(tier, miss_k);
	if (isfinite(hits) && isfinite(miss) && hits + miss > 0)
		snprintf(rate, sizeof(rate), "%.1f%%", 100 * hits / (hits + miss));
	line(f, t, "  %-10.10s %10s / %-10s %10s %10s %6s %10s %10s", name,
	     cli_bytes(u, sizeof(u), pick(tier, used_k)), cli_bytes(b, sizeof(b), pick(tier, budget_k)),
	     count(h, sizeof(h), hits), count(m, sizeof(m), miss), rate,
	     count(e, sizeof(e), pick(tier, evict_k)), cli_bytes(mv, sizeof(mv), pick(tier, moved_k)));
	/* The tier's other figures (peak, bandwidth, busy time...) below it. */
	json_t *rest = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(tier, k, v)
		if (!is_column(k))
			json_object_set(rest, k, v);
	pairs(f, t, "", rest, NULL, true);
	json_decref(rest);
}

static void hierarchy(FILE *f, const struct top *t, json_t *root)
{
	json_t *hy = json_object_get(root, "hierarchy");
	if (!json_is_object(hy))
		hy = json_object_get(root, "weights");
	char buf[64];
	line(f, t, "%s", "");
	if (!json_is_object(hy)) {
		line(f, t, "weight hierarchy: not reported by this daemon (all weights resident, %s)",
		     cli_bytes(buf, sizeof(buf), num(root, "model.weight_bytes")));
		return;
	}
	line(f, t, "weight hierarchy");
	json_t *tiers = json_object_get(hy, "tiers");
	if (json_array_size(tiers) || json_object_size(tiers))
		line(f, t, "  %-10s %10s / %-10s %10s %10s %6s %10s %10s", "tier", "used", "budget", "hits",
		     "misses", "hit%", "evictions", "moved");
	for (size_t i = 0; i < json_array_size(tiers); i++) {
		json_t *tier = json_array_get(tiers, i);
		const char *name = json_string_value(json_object_get(tier, "name"));
		if (!name)
			name = json_string_value(json_object_get(tier, "tier"));
		snprintf(buf, sizeof(buf), "%zu", i);
		if (json_is_object(tier))
			tier_row(f, t, name ? name : buf, tier);
	}
	const char *k;
	json_t *v;
	json_object_foreach(tiers, k, v)
		if (json_is_object(v))
			tier_row(f, t, k, v);
	/* Scalars first (stalls, accuracy...), then one block per object
	 * (prefetch, predictor...). */
	static const char *const skip[] = { "tiers", NULL };
	pairs(f, t, "all tiers", hy, skip, false);
	json_object_foreach(hy, k, v)
		if (json_is_object(v) && strcmp(k, "tiers"))
			pairs(f, t, k, v, NULL, false);
}

/* ---- one frame ---- */

static void frame(FILE *f, struct top *t, json_t *root, double now)
{
	char a[32], b[32], c[32], d[32], e[32], g[160];
	const char *status = json_string_value(json_object_get(root, "status"));
	json_t *model = json_object_get(root, "model");
	line(f, t, "smoke top  %s  status %s  up %s%s", smoke_client_url(t->c), status ? status : "?",
	     secs(a, sizeof(a), num(root, "uptime_s")), t->ansi ? "   (q quits)" : "");
	const char *arch = json_string_value(json_object_get(model, "architecture"));
	line(f, t, "model      %s%s%s%s", json_string_value(json_object_get(model, "id")) ?: "?",
	     arch ? " (" : "", arch ? arch : "", arch ? ")" : "");
	if (arch)
		line(f, t, "           %s layers, context %s, weights %s, chat template %s",
		     count(a, sizeof(a), num(model, "n_layer")), count(b, sizeof(b), num(model, "context_length")),
		     cli_bytes(c, sizeof(c), num(model, "weight_bytes")),
		     json_string_value(json_object_get(model, "chat_template")) ?: "-");
	line(f, t, "%s", "");
	line(f, t, "requests   admitted %s  completed %s  cancelled %s  failed %s  rejected %s",
	     count(a, sizeof(a), num(root, "requests.admitted")), count(b, sizeof(b), num(root, "requests.completed")),
	     count(c, sizeof(c), num(root, "requests.cancelled")), count(d, sizeof(d), num(root, "requests.failed")),
	     count(e, sizeof(e), num(root, "requests.rejected")));
	line(f, t, "queue      %s / %s waiting", count(a, sizeof(a), num(root, "queue.depth")),
	     count(b, sizeof(b), num(root, "queue.capacity")));
	double kv = num(root, "sequences.kv_bytes"), kvb = num(root, "sequences.kv_budget");
	snprintf(g, sizeof(g), kvb > 0 && isfinite(kv) ? " (%.1f%%)" : "", 100 * kv / kvb);
	line(f, t, "sequences  %s / %s active   KV cache %s / %s%s",
	     count(a, sizeof(a), num(root, "sequences.active")), count(b, sizeof(b), num(root, "sequences.max")),
	     cli_bytes(c, sizeof(c), kv), cli_bytes(d, sizeof(d), kvb), g);
	double gen = num(root, "tokens.generated"), prompt = num(root, "tokens.prompt");
	double done = num(root, "requests.completed"), up = num(root, "uptime_s");
	line(f, t, "tokens     prompt %s  generated %s", count(a, sizeof(a), prompt), count(b, sizeof(b), gen));
	/* Rates over the last interval need two frames; --once shows averages. */
	char now_gen[32] = "-", now_prompt[32] = "-", now_req[32] = "-", avg[32] = "-";
	if (t->have_prev && now > t->prev_t) {
		double dt = now - t->prev_t;
		snprintf(now_gen, sizeof(now_gen), "%.1f", (gen - t->prev_gen) / dt);
		snprintf(now_prompt, sizeof(now_prompt), "%.1f", (prompt - t->prev_prompt) / dt);
		snprintf(now_req, sizeof(now_req), "%.2f", (done - t->prev_done) / dt);
	}
	if (up > 0 && isfinite(gen))
		snprintf(avg, sizeof(avg), "%.1f", gen / up);
	line(f, t, "rate       %s tok/s generated, %s tok/s prompt, %s req/s now;  %s tok/s average",
	     now_gen, now_prompt, now_req, avg);
	t->have_prev = isfinite(gen) && isfinite(prompt) && isfinite(done);
	t->prev_t = now;
	t->prev_gen = gen;
	t->prev_prompt = prompt;
	t->prev_done = done;
	json_t *tm = json_object_get(root, "timings");
	histo(g, sizeof(g), json_object_get(tm, "ttft_s"));
	line(f, t, "latency    first token   %s", g);
	histo(g, sizeof(g), json_object_get(tm, "time_per_output_token_s"));
	line(f, t, "           per token     %s", g);
	histo(g, sizeof(g), json_object_get(tm, "request_duration_s"));
	line(f, t, "           request       %s", g);
	if (json_object_get(tm, "queue_wait_s")) {
		histo(g, sizeof(g), json_object_get(tm, "queue_wait_s"));
		line(f, t, "           queue wait    %s", g);
	}
	if (json_is_object(json_object_get(root, "connections")))
		line(f, t, "connections %s open, %s since start;  compute busy %s",
		     count(a, sizeof(a), num(root, "connections.open")),
		     count(b, sizeof(b), num(root, "connections.total")), secs(c, sizeof(c), num(root, "connections.busy_s")));
	hierarchy(f, t, root);
}

/* ---- the terminal ---- */

struct term {
	bool raw;
	struct termios saved;
};

static void term_enter(struct term *tm, bool ansi)
{
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &tm->saved) == 0) {
		struct termios r = tm->saved;
		/* Keys arrive one by one without echo; ISIG stays, so Ctrl-C is SIGINT. */
		r.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		r.c_cc[VMIN] = 0;
		r.c_cc[VTIME] = 0;
		tm->raw = tcsetattr(STDIN_FILENO, TCSANOW, &r) == 0;
	}
	if (ansi)
		fputs("\033[?1049h\033[?25l\033[H\033[2J", stdout); /* alternate screen, hide cursor */
	fflush(stdout);
}

static void term_leave(struct term *tm, bool ansi)
{
	if (ansi)
		fputs("\033[?25h\033[?1049l", stdout);
	fflush(stdout);
	if (tm->raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &tm->saved);
}

/* Wait up to seconds for a key; true if it is time to quit. */
static bool wait_key(double seconds, bool *stdin_open)
{
	double end = now_s() + seconds;
	for (;;) {
		if (quit_signal)
			return true;
		double left = end - now_s();
		if (left <= 0)
			return false;
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		int n = poll(&p, *stdin_open ? 1 : 0, (int)(left * 1000) + 1);
		if (n < 0 && errno != EINTR)
			return true;
		if (n > 0) {
			char k[16];
			ssize_t r = read(STDIN_FILENO, k, sizeof(k));
			if (r <= 0 && !(r < 0 && (errno == EINTR || errno == EAGAIN)))
				*stdin_open = false; /* EOF (e.g. </dev/null): only signals quit now */
			for (ssize_t i = 0; i < r; i++)
				if (k[i] == 'q' || k[i] == 'Q' || k[i] == 3 /* Ctrl-C in raw mode */)
					return true;
		}
	}
}

int cli_top(smoke_client *c, bool once, double interval)
{
	struct top t = { .c = c, .once = once, .ansi = !once && isatty(STDOUT_FILENO) };
	/* A stats request is small: a daemon that does not answer in a few
	 * seconds is shown as unreachable rather than freezing the view. */
	smoke_client_set_timeouts(c, 3000, (long)(interval * 1000) + 5000);
	if (once) {
		char *text;
		struct smoke_error e;
		if (smoke_stats_json(c, &text, &e)) {
			fprintf(stderr, "smoke: %s\n", e.message);
			return 1;
		}
		json_t *root = json_loads(text, 0, NULL);
		smoke_free(text);
		frame(stdout, &t, root, now_s());
		json_decref(root);
		return fflush(stdout) ? 1 : 0;
	}

	struct sigaction sa = { 0 }, old_int, old_term, old_hup;
	sa.sa_handler = on_signal; /* no SA_RESTART: poll returns at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGHUP, &sa, &old_hup);
	struct term tm = { 0 };
	term_enter(&tm, t.ansi);
	bool stdin_open = true;
	char *buf = NULL;
	size_t len = 0;
	int status = 0;
	while (!quit_signal) {
		FILE *f = open_memstream(&buf, &len);
		if (!f) {
			status = 1;
			break;
		}
		char *text;
		struct smoke_error e;
		double t0 = now_s();
		if (smoke_stats_json(c, &text, &e) == 0) {
			json_t *root = json_loads(text, 0, NULL);
			smoke_free(text);
			frame(f, &t, root, t0);
			json_decref(root);
		} else {
			line(f, &t, "smoke top  %s", smoke_client_url(c));
			line(f, &t, "%s", "");
			line(f, &t, "%.300s", e.message);
			line(f, &t, "retrying every %.1f s (q quits)", interval);
			t.have_prev = false;
		}
		fclose(f);
		if (t.ansi)
			fputs("\033[H", stdout);
		fwrite(buf, 1, len, stdout);
		fputs(t.ansi ? "\033[J" : "\n", stdout);
		fflush(stdout);
		free(buf);
		buf = NULL;
		if (wait_key(interval - (now_s() - t0), &stdin_open))
			break;
	}
	term_leave(&tm, t.ansi);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	return status;
}
