/* src/exec/exec_local.c: the local executor: the agent is a process on this machine, in its
 * own session, so it outlives whoever started it; its run directory is already here. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "exec/exec.h"
#include "rundir/rundir.h"
#include "rundir/runlock.h"
#include "store/store.h"
#include "util/fsio.h"
#include "util/xalloc.h"

/* A run's agent that this process spawned (R->backend): its exit status comes through the
 * handle. A run re-attached after a restart has none: its pid is watched instead. */
struct local_run {
	uv_process_t proc;
	struct exec_run *r;
	bool active; /* spawned and not yet exited */
	bool open;   /* the handle is to be closed */
};

static void
local_provision(struct exec_run *r, exec_provisioned_fn *done)
{
	char *why = NULL;
	int rc;

	/* the place is this machine; the secrets are read now, right before the start */
	exec_secrets_wipe(r->secrets_blob, r->secrets_len);
	r->secrets_blob = NULL;
	r->secrets_len = 0;
	rc = exec_secrets_read(&r->secrets, &r->secrets_blob, &r->secrets_len, &why);
	done(r, rc, why);
	free(why);
}

/* The agent's stdin when the run has secrets: a pipe holding the blob (docs/rundir.md,
 * "Secrets"). What fits is written now, before the spawn; *REST_FD (else -1) is the write end
 * when more is left for local_secrets_rest. 0 or -errno; *RD_FD the read end. */
static int
local_secrets_pipe(struct exec_run *r, int *rd_fd, int *rest_fd, size_t *off)
{
	int fds[2], rc;
	ssize_t n;

	*rd_fd = *rest_fd = -1;
	*off = 0;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	/* room for the whole blob (small: CONF_SECRETS_MAX), so that nothing waits on it */
	if (fcntl(fds[1], F_GETPIPE_SZ) < (int)r->secrets_len)
		(void)fcntl(fds[1], F_SETPIPE_SZ, (int)r->secrets_len);
	if (fcntl(fds[1], F_SETFL, O_NONBLOCK) < 0) {
		rc = -errno;
		goto fail;
	}
	while (*off < r->secrets_len) {
		n = write(fds[1], r->secrets_blob + *off, r->secrets_len - *off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break; /* the rest once the agent reads */
		if (n < 0) {
			rc = -errno;
			goto fail;
		}
		*off += (size_t)n;
	}
	*rd_fd = fds[0];
	if (*off < r->secrets_len)
		*rest_fd = fds[1];
	else
		close(fds[1]);
	return 0;
fail:
	close(fds[0]);
	close(fds[1]);
	return rc;
}

/* What did not fit in the pipe, written once the agent runs, which reads it first thing;
 * then the write end is closed (the agent sees the end of the blob). */
static void
local_secrets_rest(struct exec_run *r, int fd, size_t off)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;

	if (fd < 0)
		return;
	/* an agent that died before reading: a failed write (it records nothing, the run is
	 * found lost or unstarted), not SIGPIPE */
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &old);
	if (fcntl(fd, F_SETFL, 0) == 0 &&
	    fsio_write_all(fd, r->secrets_blob + off, r->secrets_len - off) < 0) {
		/* the agent, without its whole blob, fails the run "secrets: ..." itself */
	}
	sigaction(SIGPIPE, &old, NULL);
	close(fd);
}

static void
local_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
	struct local_run *l = p->data;
	int status = term_signal != 0 ? (term_signal & 0x7f) : (int)((exit_status & 0xff) << 8);

	l->active = false;
	exec_agent_gone(l->r, status);
}

static void
local_proc_closed(uv_handle_t *h)
{
	struct local_run *l = h->data;
	struct exec_run *r = l->r;

	r->backend = NULL;
	free(l);
	exec_handle_closed(r); /* may free R */
}

/* Whether R's agent is alive: its pid (with its start time), or the run's lock is held (then
 * R->agent_pid is read again from agent.pid, which the agent writes right after taking the
 * lock). */
static bool
local_pid_alive(struct exec_run *r)
{
	enum runlock_state ls;

	if (r->agent_pid != 0 && rundir_pid_alive(r->agent_pid, r->agent_start))
		return true;
	if (runlock_inspect(r->dir, &ls) < 0 || ls != RUNLOCK_HELD)
		return false;
	/* held by an agent whose pid we do not know yet (agent.pid is written right after) */
	if (rundir_pid_read(r->dir, &r->agent_pid, &r->agent_start) < 0)
		r->agent_pid = 0;
	return true;
}

static int
local_start(struct exec_run *r)
{
	char exe[4096];
	size_t exelen = sizeof(exe);
	char *args[4], *logpath, *slim, *slash, **envp;
	uv_stdio_container_t stdio[RUNLOCK_FD + 1];
	uv_process_options_t o = { 0 };
	struct store_run row;
	struct local_run *l;
	int logfd, lockfd, rc, sin = -1, srest = -1;
	size_t soff = 0;

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
	if (r->secrets_blob != NULL) {
		if ((rc = local_secrets_pipe(r, &sin, &srest, &soff)) < 0) {
			free(slim);
			close(logfd);
			close(lockfd);
			goto out;
		}
		stdio[0].flags = UV_INHERIT_FD;
		stdio[0].data.fd = sin;
	}
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = logfd;
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = logfd;
	stdio[RUNLOCK_FD].flags = UV_INHERIT_FD;
	stdio[RUNLOCK_FD].data.fd = lockfd;
	/* the variables the jobs' secrets come from stay here: a command gets a secret only
	 * by name (and masked), never by inheriting ours */
	envp = exec_secrets_environ(&r->secrets, environ);
	o.env = envp;
	o.file = args[0];
	o.args = args;
	o.exit_cb = local_exit_cb;
	o.flags = UV_PROCESS_DETACHED; /* setsid(): no signal of our terminal reaches it */
	o.stdio = stdio;
	o.stdio_count = RUNLOCK_FD + 1;
	l = xcalloc(1, sizeof(*l));
	l->r = r;
	l->proc.data = l;
	r->backend = l;
	rc = uv_spawn(r->loop, &l->proc, &o);
	close(logfd);
	close(lockfd); /* the agent's copy holds it now */
	if (sin >= 0)
		close(sin);
	free(envp);
	free(slim);
	r->handles_open++; /* uv_spawn initialises the handle even when it fails */
	if (rc < 0) {
		if (srest >= 0)
			close(srest);
		uv_close((uv_handle_t *)&l->proc, local_proc_closed);
		goto out;
	}
	local_secrets_rest(r, srest, soff);
	l->active = true;
	l->open = true;
	r->agent_pid = l->proc.pid;
	if (rundir_proc_starttime(r->agent_pid, &r->agent_start) < 0)
		r->agent_start = 0;
out:
	/* the values live no longer than the start */
	exec_secrets_wipe(r->secrets_blob, r->secrets_len);
	r->secrets_blob = NULL;
	r->secrets_len = 0;
	return rc;
}

static int
local_cancel(struct exec_run *r)
{
	struct local_run *l = r->backend;

	if (r->agent_pid <= 0)
		return -ESRCH;
	if (!(l != NULL && l->active) && !rundir_pid_alive(r->agent_pid, r->agent_start))
		return -ESRCH;
	return kill(r->agent_pid, SIGTERM) < 0 ? -errno : 0;
}

static void
local_poll(struct exec_run *r)
{
	struct local_run *l = r->backend;

	/* a child of ours: its exit callback tells, with its status */
	if (l != NULL && l->open)
		return;
	if (!local_pid_alive(r))
		exec_agent_gone(r, -1);
}

static int
local_alive(struct exec_run *r)
{
	/* the process itself: a child that exited is gone even before its exit callback */
	return local_pid_alive(r) ? 1 : 0;
}

static enum exec_found
local_inspect(const struct store_run *row, char **why)
{
	enum runlock_state ls;
	pid_t pid = (pid_t)row->agent_pid;
	uint64_t start = (uint64_t)row->agent_start;

	*why = NULL;
	if (pid == 0 && rundir_pid_read(row->run_dir, &pid, &start) < 0) {
		pid = 0;
		start = 0;
	}
	if (pid != 0 && rundir_pid_alive(pid, start))
		return EXEC_ALIVE;
	/* a free lock means no agent, so what it left is final */
	if (runlock_inspect(row->run_dir, &ls) < 0 || ls == RUNLOCK_HELD)
		return EXEC_ALIVE; /* or cannot tell: left alone */
	if (ls == RUNLOCK_PREPARED || (ls == RUNLOCK_NONE && pid == 0))
		return EXEC_UNSTARTED;
	*why = pid != 0 ? xasprintf("the agent (pid %d) ended without writing a result", (int)pid)
	                : xstrdup("the agent ended without writing a result");
	return EXEC_LOST;
}

static int
local_reattach(struct exec_run *r, const struct store_run *row)
{
	/* not our child: the tick (local_poll) watches its pid, with its start time, and the
	 * run's lock */
	if (row != NULL && row->agent_pid != 0) {
		r->agent_pid = (pid_t)row->agent_pid;
		r->agent_start = (uint64_t)row->agent_start;
	} else if (rundir_pid_read(r->dir, &r->agent_pid, &r->agent_start) < 0) {
		r->agent_pid = 0;
		r->agent_start = 0;
	}
	return local_pid_alive(r) ? 1 : 0;
}

static void
local_teardown(struct exec_run *r)
{
	struct local_run *l = r->backend;

	if (l != NULL && l->open) {
		l->open = false; /* closing stops watching; the agent itself goes on */
		uv_close((uv_handle_t *)&l->proc, local_proc_closed);
	}
}

/* memory_budget: the memory limits of the runs started here, summed, stay within it */
static bool
local_fits(struct executor *ex, uint64_t memory)
{
	return ex->budget == 0 || ex->used + memory <= ex->budget;
}

static void
local_reserve(struct executor *ex, struct exec_run *r, uint64_t memory)
{
	(void)r;
	ex->used += memory;
}

static void
local_release(struct executor *ex, struct exec_run *r, uint64_t memory)
{
	(void)r;
	ex->used -= memory < ex->used ? memory : ex->used;
}

static int
local_configure(struct executor *ex, const struct conf *c, const struct conf_executor *ce,
                struct diag *d)
{
	(void)ce;
	(void)d;
	ex->budget = c->local.memory_budget;
	ex->max_wait = 0; /* a local run waits for memory as long as it takes */
	return 0;
}

const struct exec_ops exec_local_ops = {
	.name = "local",
	.fits = local_fits,
	.reserve = local_reserve,
	.release = local_release,
	.configure = local_configure,
	.destroy = NULL,
	.provision = local_provision,
	.start = local_start,
	.cancel = local_cancel,
	.poll = local_poll,
	.alive = local_alive,
	.inspect = local_inspect,
	.reattach = local_reattach,
	.pull = NULL, /* the agent writes into the run directory here */
	.teardown = local_teardown,
};
