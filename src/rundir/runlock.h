/* src/rundir/runlock.h: a run's lock, DIR/agent.lock (docs/rundir.md): who may start the run's
 * command, and whether it may have started.
 *
 * Whoever starts an agent takes the lock first (runlock_take) and hands it over: the agent
 * inherits the open file as its descriptor RUNLOCK_FD and keeps it until it exits. So the lock
 * is held from before the agent exists until it is gone, and a run whose lock is free has no
 * agent, nor will one appear unless someone starts it. Right before its command's execve the
 * agent writes "exec" into the file (runlock_mark_exec): a run whose agent is gone without
 * that mark never ran its command, so it may run now; with it, the command may have run. An
 * agent refuses a run whose command already started (or that has a result): however many
 * agents are started for a run directory, its command runs at most once. */
#ifndef EPH_RUNDIR_RUNLOCK_H
#define EPH_RUNDIR_RUNLOCK_H
#include <stdbool.h>

#include "util/attr.h"

#define RUNLOCK_FILE "agent.lock"
#define RUNLOCK_FD   3 /* where an agent finds the lock its starter handed over */

/* What a run directory's lock says, read by runlock_inspect. */
enum runlock_state {
	RUNLOCK_NONE,     /* no agent.lock: no agent was ever started under the lock */
	RUNLOCK_HELD,     /* an agent (or its starter) holds it */
	RUNLOCK_PREPARED, /* free, and the command never started */
	RUNLOCK_EXEC,     /* free, and the command may have started */
};

/* For a starter: opens DIR/agent.lock (created if needed) and takes its exclusive flock
 * without waiting. 0 and *FD (close-on-exec: pass it to the agent as RUNLOCK_FD, then close
 * it); -EBUSY when another holds it; -EALREADY (not held) when the command already started
 * or the run has a result.json; another -errno. */
EPH_MUST_CHECK int runlock_take(const char *dir, int *fd);
/* For the agent: *FD becomes the lock its starter handed over when INHERITED is DIR/agent.lock's
 * open file (made close-on-exec, so that no child keeps it), else the lock taken now. Then as
 * runlock_take: -EBUSY, -EALREADY, another -errno. */
EPH_MUST_CHECK int runlock_adopt(const char *dir, int inherited, int *fd);
/* Records in the held lock FD that the command is about to start: written and synced before
 * the caller lets it exec. 0 or -errno (then the command must not start). */
EPH_MUST_CHECK int runlock_mark_exec(int fd);
/* What DIR's lock says now (the lock is taken and released to tell held from free; an absent
 * file is not created). 0, or -errno when it cannot be told. */
EPH_MUST_CHECK int runlock_inspect(const char *dir, enum runlock_state *st);

#endif
