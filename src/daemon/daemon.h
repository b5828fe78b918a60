/* src/daemon/daemon.h: `eph daemon`, the scheduler: one process, one libuv loop, one timer for
 * the earliest due event (a heap of job fires, delayed starts and retries), the runs it
 * started or re-attached, signals (SIGHUP reloads, SIGTERM/SIGINT stop), the control socket
 * STATE/eph.sock, and a watch on the jobs file. See docs/daemon.md. */
#ifndef EPH_DAEMON_DAEMON_H
#define EPH_DAEMON_DAEMON_H
#include <stdbool.h>

struct daemon_opts {
	const char *conf_path; /* the jobs file; with from_repo, its path in the repository */
	const char *from_repo; /* NULL, or the repository to read the jobs file from */
	const char *branch;    /* with from_repo: its branch, NULL = the remote's default */
	const char *state_dir; /* created if missing */
	bool log_json;         /* JSON lines on stderr instead of text */
};

/* Runs the daemon until SIGTERM or SIGINT. Returns 0 after a clean stop, 1 when it could not
 * start (another daemon holds the state directory, the jobs file is invalid, the store cannot
 * be opened: said on stderr). */
int daemon_run(const struct daemon_opts *o);
/* true when PATH can name a jobs file inside a repository: relative, no "." or ".." part. */
bool daemon_repo_path_ok(const char *path);

#endif
