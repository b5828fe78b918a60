/* src/source/gitrun.c: the git program, run with posix_spawn in its own process group. */
#include "source/gitrun.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/redact.h"
#include "util/xalloc.h"

extern char **environ;

/* The environment git runs with: ours, without the variables we set, then those. Caller frees
 * the array (not the borrowed strings); *OWNED lists what to free too. */
static char **
gitrun_env(void)
{
	size_t n = 0, k = 0;
	bool ssh_set = getenv("GIT_SSH_COMMAND") != NULL || getenv("GIT_SSH") != NULL;
	char **env;

	while (environ[n] != NULL)
		n++;
	env = xcalloc(n + 3, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "GIT_TERMINAL_PROMPT=", 20) != 0)
			env[k++] = environ[i];
	env[k++] = (char *)"GIT_TERMINAL_PROMPT=0";
	if (!ssh_set)
		env[k++] = (char *)"GIT_SSH_COMMAND=ssh -o BatchMode=yes";
	env[k] = NULL;
	return env;
}

/* Reads what FD has into B (past B's limit, the bytes are read and dropped). Returns 1 at EOF
 * or on error (the fd is done), 0 otherwise. */
static int
gitrun_drain(int fd, struct buf *b)
{
	char chunk[8192];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : 1;
	if (n == 0)
		return 1;
	if (b->len < b->limit) {
		size_t room = b->limit - b->len;

		if (buf_append(b, chunk, (size_t)n < room ? (size_t)n : room) < 0)
			return 1; /* cannot happen: it fits */
	}
	return 0;
}

static volatile sig_atomic_t gitrun_aborted;

void
gitrun_abort(void)
{
	gitrun_aborted = 1;
}

bool
gitrun_is_aborted(void)
{
	return gitrun_aborted != 0;
}

/* Runs PROG ARGS... in CWD (NULL: ours); GIT: with gitrun_env() (else our environment as it
 * is). */
static int
gitrun_spawn(const char *prog, bool git, const char *cwd, const char *const *args,
             int64_t timeout_ms, struct gitrun_result *r)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int out[2] = { -1, -1 }, err[2] = { -1, -1 };
	struct buf bo, be;
	size_t nargs = 0;
	char **argv, **env;
	pid_t pid;
	int rc, status = 0;
	int64_t deadline;
	bool killed = false;

	memset(r, 0, sizeof(*r));
	if (gitrun_aborted)
		return -ECANCELED;
	while (args[nargs] != NULL)
		nargs++;
	argv = xcalloc(nargs + 2, sizeof(char *));
	argv[0] = (char *)prog;
	for (size_t i = 0; i < nargs; i++)
		argv[i + 1] = (char *)args[i];
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		rc = -errno;
		free(argv);
		for (int i = 0; i < 2; i++) {
			if (out[i] >= 0)
				close(out[i]);
		}
		return rc;
	}
	env = git ? gitrun_env() : NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	if (cwd != NULL)
		posix_spawn_file_actions_addchdir_np(&fa, cwd);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setpgroup(&attr, 0);
	{
		sigset_t none;

		sigemptyset(&none);
		posix_spawnattr_setsigmask(&attr, &none);
	}
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
	rc = posix_spawnp(&pid, prog, &fa, &attr, argv, env != NULL ? env : environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free(env);
	free(argv);
	close(out[1]);
	close(err[1]);
	if (rc != 0) {
		close(out[0]);
		close(err[0]);
		return -rc;
	}

	buf_init(&bo, GITRUN_MAX_OUT);
	buf_init(&be, GITRUN_MAX_ERR);
	deadline = timeout_ms > 0 ? clock_mono_ms() + timeout_ms : 0;
	for (;;) {
		struct pollfd p[2] = { { out[0], POLLIN, 0 }, { err[0], POLLIN, 0 } };
		int wait_ms = 1000,
		    np; /* at most a second: a gitrun_abort() between the check and poll */

		if (out[0] < 0 && err[0] < 0)
			break;
		if (gitrun_aborted) { /* a signal handler asked: as at the timeout */
			kill(-pid, SIGKILL);
			killed = true;
			break;
		}
		if (deadline > 0) {
			int64_t left = deadline - clock_mono_ms();

			if (left <= 0) {
				/* The group: ssh and the remote helpers die with git. Their pipes
				 * may be held by something that left the group, so stop reading. */
				kill(-pid, SIGKILL);
				killed = true;
				break;
			}
			wait_ms = left > 1000 ? 1000 : (int)left;
		}
		p[0].fd = out[0];
		p[1].fd = err[0];
		np = poll(p, 2, wait_ms);
		if (np < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2 && np > 0; i++) {
			int *fd = i == 0 ? &out[0] : &err[0];

			if (*fd < 0 || p[i].revents == 0)
				continue;
			if (gitrun_drain(*fd, i == 0 ? &bo : &be)) {
				close(*fd);
				*fd = -1;
			}
		}
	}
	if (out[0] >= 0)
		close(out[0]);
	if (err[0] >= 0)
		close(err[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			status = 0x7f00; /* unknown: reads as exit 127 */
			break;
		}
	}
	if (WIFEXITED(status)) {
		r->status = WEXITSTATUS(status);
	} else {
		r->status = -1;
		r->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	}
	r->timed_out = killed;
	r->out = xstrdup(buf_cstr(&bo));
	r->err = gitrun_redact(buf_cstr(&be));
	buf_free(&bo);
	buf_free(&be);
	return 0;
}

int
gitrun(const char *const *args, int64_t timeout_ms, struct gitrun_result *r)
{
	return gitrun_spawn("git", true, NULL, args, timeout_ms, r);
}

int
gitrun_prog(const char *prog, const char *cwd, const char *const *args, int64_t timeout_ms,
            struct gitrun_result *r)
{
	return gitrun_spawn(prog, false, cwd, args, timeout_ms, r);
}

bool
gitrun_ok(const struct gitrun_result *r)
{
	return !r->timed_out && r->status == 0;
}

void
gitrun_result_free(struct gitrun_result *r)
{
	if (r == NULL)
		return;
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* Appends the line [S, E) to B, trimmed, "; "-separated. */
static void
gitrun_add_line(struct buf *b, const char *s, const char *e)
{
	while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	if (s == e)
		return;
	/* B's limit cuts a long message short; what fits is kept. */
	if (b->len > 0 && buf_puts(b, "; ") < 0)
		return;
	if (buf_append(b, s, (size_t)(e - s)) < 0 && b->len + 4 < b->limit) {
		size_t room = b->limit - b->len - 4;

		if (buf_append(b, s, room) == 0 && buf_puts(b, "...") < 0)
			return;
	}
}

char *
gitrun_why(const struct gitrun_result *r, int64_t timeout_ms)
{
	/* git's boilerplate after "Could not read from remote repository." */
	static const char *const noise[] = { "Please make sure you have the correct access rights",
		                             "and the repository exists.", NULL };
	struct buf b;

	if (r->timed_out)
		return xasprintf("git timed out after %llds", (long long)(timeout_ms / 1000));
	buf_init(&b, 1024);
	for (const char *p = r->err; p != NULL && *p != '\0';) {
		const char *nl = strchr(p, '\n'), *e = nl != NULL ? nl : p + strlen(p);
		bool skip = false;

		for (size_t i = 0; noise[i] != NULL && !skip; i++)
			skip = strncmp(p, noise[i], strlen(noise[i])) == 0;
		if (!skip)
			gitrun_add_line(&b, p, e);
		p = nl != NULL ? nl + 1 : e;
	}
	if (b.len == 0) {
		buf_free(&b);
		if (r->signal > 0)
			return xasprintf("git was killed by signal %d", r->signal);
		return xasprintf("git exited with status %d", r->status);
	}
	return buf_steal(&b);
}

char *
gitrun_redact(const char *text)
{
	return redact_url(text);
}
