/* src/agent/spawn.c: fork/exec with an error pipe (spawn.h). */
#include "agent/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

struct child_err {
	int stage; /* enum spawn_stage */
	int err;
};

EPH_NORETURN static void
child_fail(int fd, enum spawn_stage stage, int err)
{
	struct child_err ce = { (int)stage, err };

	if (write(fd, &ce, sizeof(ce)) < 0) {
		/* nothing left to tell it with */
	}
	_exit(127);
}

/* In the child, between fork and exec: only async-signal-safe calls. Every signal is blocked
 * on entry (spawn_start), so no handler of the parent's runs here. GO is the read end of the
 * release pipe (-1 without a hold), GOW its write end, which the child must not keep: if the
 * parent dies before releasing it, the child then reads EOF and exits instead of waiting
 * forever or running outside its cgroup. */
EPH_NORETURN static void
child_main(const struct spawn_opts *o, int devnull, int out, int err, int go, int gow, int errw)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;
	ssize_t n;
	char c;

	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			(void)sigaction(s, &dfl, NULL); /* EINVAL for the numbers glibc reserves */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (gow >= 0)
		close(gow);
	if ((o->setsid ? setsid() : setpgid(0, 0)) < 0)
		child_fail(errw, SPAWN_SETUP, errno);
	if (dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		child_fail(errw, SPAWN_SETUP, errno);
	/* wait until the parent is done with O->hold; anything but its "g" (EOF: it died; an
	 * error) means the child was never set up, and must not run */
	if (go >= 0) {
		while ((n = read(go, &c, 1)) < 0 && errno == EINTR)
			;
		if (n != 1 || c != 'g')
			_exit(127);
	}
	if (o->cwd != NULL && chdir(o->cwd) < 0)
		child_fail(errw, SPAWN_CHDIR, errno);
	if (o->path != NULL)
		execve(o->path, o->argv, o->envp);
	else
		execvpe(o->argv[0], o->argv, o->envp);
	child_fail(errw, SPAWN_EXEC, errno);
}

int
spawn_start(const struct spawn_opts *o, struct spawn *s)
{
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, go[2] = { -1, -1 }, ew[2] = { -1, -1 };
	int devnull = -1, rc = 0;
	struct child_err ce;
	sigset_t all, old;
	ssize_t n;

	*s = (struct spawn){ .pid = 0, .out = -1, .err = -1, .stage = SPAWN_OK };
	if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
	    pipe2(err, O_CLOEXEC) < 0 || (o->hold != NULL && pipe2(go, O_CLOEXEC) < 0) ||
	    pipe2(ew, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	/* as uv_spawn does: no signal handler may run in the child before it resets them */
	sigfillset(&all);
	if ((rc = pthread_sigmask(SIG_SETMASK, &all, &old)) != 0) {
		rc = -rc;
		goto out;
	}
	s->pid = fork();
	if (s->pid == 0)
		child_main(o, devnull, out[1], err[1], go[0], go[1], ew[1]);
	if (s->pid < 0) {
		rc = -errno;
		s->pid = 0;
	}
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0)
		goto out;
	if (!o->setsid)
		(void)setpgid(s->pid, s->pid); /* either side may win the race; both say the same */
	close(out[1]);
	close(err[1]);
	close(ew[1]);
	out[1] = err[1] = ew[1] = -1;
	if (o->hold != NULL) {
		if ((rc = o->hold(s->pid, o->arg)) != 0) {
			kill(s->pid, SIGKILL);
			goto out;
		}
		/* release the child */
		if (write(go[1], "g", 1) != 1) {
			rc = -errno;
			kill(s->pid, SIGKILL);
			goto out;
		}
	}
	/* EOF: exec happened (the pipe is close-on-exec); else why it failed */
	while ((n = read(ew[0], &ce, sizeof(ce))) < 0 && errno == EINTR)
		;
	if (n == (ssize_t)sizeof(ce)) {
		s->stage = (enum spawn_stage)ce.stage;
		s->stage_err = ce.err;
	}
	s->out = out[0];
	s->err = err[0];
	out[0] = err[0] = -1;
out:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
		if (go[i] >= 0)
			close(go[i]);
		if (ew[i] >= 0)
			close(ew[i]);
	}
	if (devnull >= 0)
		close(devnull);
	return rc;
}
