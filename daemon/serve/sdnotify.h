/* sdnotify.h - tell systemd about our state (Type=notify) without libsystemd.
 *
 * The protocol: send a datagram of "KEY=VALUE\n" lines to the AF_UNIX socket
 * named by $NOTIFY_SOCKET (a leading '@' means the abstract namespace).
 * Without $NOTIFY_SOCKET this is a no-op, so the daemon runs the same by hand.
 */
#ifndef SMK_SERVE_SDNOTIFY_H
#define SMK_SERVE_SDNOTIFY_H

/* Send state, e.g. "READY=1\nSTATUS=serving".  Returns 0 (also when there is
 * no systemd) or a negative errno. */
int sd_notify_send(const char *state);

/* printf-style STATUS=... line. */
int sd_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
