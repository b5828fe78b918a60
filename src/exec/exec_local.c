/* src/exec/exec_local.c: the local executor: the agent is a process on this machine, in its
 * own session, so it outlives whoever started it; its run directory is already here. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/exec.h"
#include "rundir/rundir.h"
#include "rundir/runlock.h"
#include "store/store.h"
#include "util/xalloc.h"

static int
local_provision(struct exec_run *r)
{
	(void)r;
	return 0;
}

static void
local_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
	struct exec_run *r = p->data;
	int status = term_signal != 0 ? (term_signal & 0x7f) : (int)((exit_status & 0xff) << 8);

	r->proc_active = false;
	exec_agent_gone(r, status);
}

static void
local_proc_closed(uv_handle_t *h)
{
	struct exec_run *r = h->data;

	if (--r->handles_open == 0 && r->hooks.closed != NULL)
		r->hooks.closed(r, r->hooks.arg);
}

static int
local_start(struct exec_run *r)
{
	char exe[4096];
	size_t exelen = sizeof(exe);
	char *args[4], *logpath, *slim, *slash;
	uv_stdio_container_t stdio[RUNLOCK_FD + 1];
	uv_process_options_t o = { 0 };
	struct store_run row;
	int logfd, lockfd, rc;

	rc = uv_exepath(exe, &exelen);
	if (rc < 0)
		return rc;
	/* the run's lock, handed over to the agent: held from now until the agent is gone */
	if ((rc = runlock_take(r->dir, &lockfd)) < 0)
		return rc;
	/* under the lock: a restarted daemon may have settled the run meanwhile (docs/daemon.md) */
	store_run_init(&row);
	rc = store_run_get(r->store, r->id, &row);
	if (rc == 0 && store_state_terminal(row.state))
		rc = -ECANCELED;
	store_run_clear(&row);
	if (rc < 0) {
		close(lockfd);
		return rc;
	}
	logpath = xasprintf("%s/agent.log", r->dir);
	logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	free(logpath);
	if (logfd < 0) {
		rc = -errno;
		close(lockfd);
		return rc;
	}
	/* the slim eph-agent next to eph (src/eph_agent.c), else `eph agent` */
	slash = strrchr(exe, '/');
	slim = xasprintf("%.*s/eph-agent", slash != NULL ? (int)(slash - exe) : 1,
	                 slash != NULL ? exe : ".");
	if (access(slim, X_OK) == 0) {
		args[0] = slim;
		args[1] = r->dir;
		args[2] = NULL;
	} else {
		args[0] = exe;
		args[1] = (char *)"agent";
		args[2] = r->dir;
		args[3] = NULL;
	}
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = logfd;
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = logfd;
	stdio[RUNLOCK_FD].flags = UV_INHERIT_FD;
	stdio[RUNLOCK_FD].data.fd = lockfd;
	o.file = args[0];
	o.args = args;
	o.exit_cb = local_exit_cb;
	o.flags = UV_PROCESS_DETACHED; /* setsid(): no signal of our terminal reaches it */
	o.stdio = stdio;
	o.stdio_count = RUNLOCK_FD + 1;
	r->proc.data = r;
	rc = uv_spawn(r->loop, &r->proc, &o);
	close(logfd);
	close(lockfd); /* the agent's copy holds it now */
	free(slim);
	r->handles_open++; /* uv_spawn initialises the handle even when it fails */
	if (rc < 0) {
		uv_close((uv_handle_t *)&r->proc, local_proc_closed);
		return rc;
	}
	r->proc_active = true;
	r->proc_open = true;
	r->agent_pid = r->proc.pid;
	if (rundir_proc_starttime(r->agent_pid, &r->agent_start) < 0)
		r->agent_start = 0;
	return 0;
}

static int
local_cancel(struct exec_run *r)
{
	if (r->agent_pid <= 0)
		return -ESRCH;
	if (!r->proc_active && !rundir_pid_alive(r->agent_pid, r->agent_start))
		return -ESRCH;
	return kill(r->agent_pid, SIGTERM) < 0 ? -errno : 0;
}

static int
local_reattach(struct exec_run *r)
{
	/* not our child: exec.c's tick watches its pid (with its start time) and the run's lock */
	return exec_agent_alive(r) ? 1 : 0;
}

static void
local_teardown(struct exec_run *r)
{
	if (r->proc_open) {
		r->proc_open = false; /* closing stops watching; the agent itself goes on */
		uv_close((uv_handle_t *)&r->proc, local_proc_closed);
	}
}

const struct exec_ops exec_local_ops = {
	.name = "local",
	.provision = local_provision,
	.start = local_start,
	.cancel = local_cancel,
	.reattach = local_reattach,
	.teardown = local_teardown,
};
