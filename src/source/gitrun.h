/* src/source/gitrun.h: runs the `git` program with an argv (never a shell), no terminal
 * prompt, batch-mode ssh, stdin from /dev/null, its output captured with caps, and a timeout
 * after which its whole process group is killed. */
#ifndef EPH_SOURCE_GITRUN_H
#define EPH_SOURCE_GITRUN_H
#include <stdbool.h>
#include <stdint.h>

#include "util/attr.h"

#define GITRUN_MAX_OUT (1u << 20)  /* stdout kept (rev-parse, config): far beyond any use */
#define GITRUN_MAX_ERR (16u << 10) /* stderr kept for messages; the rest is drained */

struct gitrun_result {
	int status;     /* exit status; -1 when killed by a signal */
	int signal;     /* the signal that ended git, else 0 */
	bool timed_out; /* the timeout passed and the process group was killed */
	char *out;      /* stdout, NUL-terminated, never NULL after gitrun() returned 0 */
	char *err;      /* stderr, NUL-terminated, URL userinfo removed (gitrun_redact) */
};

/* Runs "git ARGS..." (ARGS NULL-terminated, without "git") with the caller's environment plus
 * GIT_TERMINAL_PROMPT=0 and, unless GIT_SSH_COMMAND or GIT_SSH is set, GIT_SSH_COMMAND="ssh -o
 * BatchMode=yes". TIMEOUT_MS <= 0 means none. git runs in its own process group, which is
 * killed (SIGKILL) when the timeout passes. Returns 0 when git ran (whatever its exit status:
 * see R, which then owns out and err: gitrun_result_free) or -errno when it could not be
 * started (R holds nothing then). */
EPH_MUST_CHECK int gitrun(const char *const *args, int64_t timeout_ms, struct gitrun_result *r);
/* As gitrun(), for another program PROG (a path, or a name looked up on PATH: pip and python
 * for the wheels of remote runs): "PROG ARGS..." with the caller's environment as it is, in
 * the directory CWD (NULL: ours; one that cannot be entered makes PROG exit 127). */
EPH_MUST_CHECK int gitrun_prog(const char *prog, const char *cwd, const char *const *args,
                               int64_t timeout_ms, struct gitrun_result *r);
/* Makes the gitrun() in progress, and every later one, kill its git's process group and
 * return as if timed out (later ones: -ECANCELED). Async-signal-safe: what a SIGTERM handler
 * of a process that runs git calls, so that no git outlives it (git is in a process group of
 * its own, which a signal to its parent does not reach). */
void gitrun_abort(void);
/* true once gitrun_abort() was called: a wait that a signal interrupts (EINTR) gives up then
 * instead of waiting again. Async-signal-safe. */
bool gitrun_is_aborted(void);
/* true when R says git exited with status 0. */
bool gitrun_ok(const struct gitrun_result *r);
void gitrun_result_free(struct gitrun_result *r); /* frees the members; NULL is fine */
/* A one-line summary of why git failed, for a person: stderr's lines joined by "; " (git's
 * "make sure you have the correct access rights" boilerplate left out; at most 1 KiB), or
 * "git timed out after Ns", or the exit status / signal when stderr is empty. Caller frees. */
char *gitrun_why(const struct gitrun_result *r, int64_t timeout_ms);
/* redact_url() (util/redact.h): TEXT without the userinfo of any URL in it. Caller frees. */
char *gitrun_redact(const char *text);

#endif
