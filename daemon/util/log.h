/* log.h - one line per event on stderr, with a level.
 *
 * Under systemd (JOURNAL_STREAM set) each line starts with the syslog
 * priority "<N>" so that the journal records the level; elsewhere with a
 * UTC timestamp.  Lines are written with one write() each, so lines from
 * different threads never interleave. */
#ifndef SMK_UTIL_LOG_H
#define SMK_UTIL_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };  /* = enum config_log_level */

void log_init(int max_level);
int log_enabled(int level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A line caused by a client (a malformed request, a peer that vanished):
 * at most LOG_CLIENT_BURST of them per LOG_CLIENT_WINDOW seconds over all
 * threads, so that one hostile client cannot flood the log; what was
 * dropped is counted in one warning when the next window opens. */
enum { LOG_CLIENT_BURST = 20, LOG_CLIENT_WINDOW = 10 };
void log_client(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
