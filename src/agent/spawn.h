/* src/agent/spawn.h: fork/exec of a child whose stdout and stderr come back through pipes,
 * with exec failures reported through a close-on-exec pipe (the agent's command, the venv's
 * interpreter and pip). */
#ifndef EPH_AGENT_SPAWN_H
#define EPH_AGENT_SPAWN_H
#include <stdbool.h>
#include <sys/types.h>

#include "util/attr.h"

/* Where the child stopped before exec. */
enum spawn_stage {
	SPAWN_OK,    /* it exec'd */
	SPAWN_CHDIR, /* chdir(cwd) failed */
	SPAWN_EXEC,  /* exec failed */
	SPAWN_SETUP, /* setsid/setpgid or dup2 failed */
};

struct spawn_opts {
	char *const *argv;
	char *const *envp;
	const char *path; /* execve(PATH, ...); NULL: execvpe(argv[0], ...) */
	const char *cwd;  /* NULL: ours */
	bool setsid;      /* its own session; else its own process group */
	/* When not NULL: called in the parent with the child's pid before the child may go on
	 * to chdir and exec (it waits on a pipe until this returned 0). A nonzero return (a
	 * -errno) keeps it from ever exec'ing: it is SIGKILLed and spawn_start returns that
	 * value. A child that is never released (the parent died first) exits 127 without
	 * exec. */
	int (*hold)(pid_t pid, void *arg);
	void *arg;
};

struct spawn {
	pid_t pid;              /* > 0 once forked; the caller reaps it */
	int out, err;           /* read ends of its stdout and stderr; the caller closes them */
	enum spawn_stage stage; /* SPAWN_OK, or where it failed (it then exits 127) */
	int stage_err;          /* errno of that failure */
};

/* Starts O->argv with stdin /dev/null, every signal at its default and unblocked. 0 with S
 * filled: S->stage tells whether it exec'd. -errno when it could not be started (S->pid is
 * 0), or when O->hold refused the release or the release failed (S->pid is then SIGKILLed,
 * not reaped). */
EPH_MUST_CHECK int spawn_start(const struct spawn_opts *o, struct spawn *s);

#endif
