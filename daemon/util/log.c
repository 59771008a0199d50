#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int max_level = LOG_INFO;
static int journal = -1;

void log_init(int level)
{
	max_level = level;
	journal = getenv("JOURNAL_STREAM") != NULL;
}

int log_enabled(int level)
{
	return level <= max_level;
}

static void log_va(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_va(level, fmt, ap);
	va_end(ap);
}

/* Client-caused lines: a window of LOG_CLIENT_WINDOW seconds lets
 * LOG_CLIENT_BURST of them through; the rest are counted and reported in
 * one line when a later window opens. */
static pthread_mutex_t client_lock = PTHREAD_MUTEX_INITIALIZER;
static double client_window;       /* start of the current window (CLOCK_MONOTONIC s) */
static unsigned client_lines, client_dropped;

void log_client(int level, const char *fmt, ...)
{
	if (level > max_level)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double now = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
	unsigned dropped = 0;
	bool pass;
	pthread_mutex_lock(&client_lock);
	if (now - client_window >= LOG_CLIENT_WINDOW) {
		dropped = client_dropped;
		client_window = now;
		client_lines = 0;
		client_dropped = 0;
	}
	pass = client_lines < LOG_CLIENT_BURST;
	if (pass)
		client_lines++;
	else
		client_dropped++;
	pthread_mutex_unlock(&client_lock);
	if (dropped)
		log_msg(LOG_WARN, "%u client-caused log lines suppressed in the last %d s (at most %d per %d s)",
			dropped, LOG_CLIENT_WINDOW, LOG_CLIENT_BURST, LOG_CLIENT_WINDOW);
	if (!pass)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_va(level, fmt, ap);
	va_end(ap);
}

static void log_va(int level, const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	static const int syslog_prio[] = { 3, 4, 6, 7 };
	if (level > max_level)
		return;
	if (journal < 0)
		journal = getenv("JOURNAL_STREAM") != NULL;
	char line[2048];
	int n;
	if (journal) {
		n = snprintf(line, sizeof(line), "<%d>%s: ", syslog_prio[level], names[level]);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ smoked %s: ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			     tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
	}
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	/* One event, one line: a newline inside the message would split it. */
	for (size_t i = (size_t)n; i < len; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}
