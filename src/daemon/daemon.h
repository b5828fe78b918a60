/* src/daemon/daemon.h: `eph daemon`, the scheduler: one process, one libuv loop, one timer for
 * the earliest due event (a heap of job fires, delayed starts and retries), the runs it
 * started or re-attached, signals (SIGHUP reloads, SIGTERM/SIGINT stop), the control socket
 * STATE/eph.sock, and a watch on the jobs file. See docs/daemon.md. */
#ifndef EPH_DAEMON_DAEMON_H
#define EPH_DAEMON_DAEMON_H
#include <stdbool.h>

struct daemon_opts {
	const char *conf_path; /* the jobs file */
	const char *state_dir; /* created if missing */
	bool log_json;         /* JSON lines on stderr instead of text */
};

/* Runs the daemon until SIGTERM or SIGINT. Returns 0 after a clean stop, 1 when it could not
 * start (another daemon holds the state directory, the jobs file is invalid, the store cannot
 * be opened: said on stderr). */
int daemon_run(const struct daemon_opts *o);

#endif
