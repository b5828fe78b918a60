/* src/eph_agent.c: `eph-agent RUN_DIR`, the agent alone, as executors start it.
 *
 * The same code as `eph agent RUN_DIR`, linked without the store, the YAML parser and the mail
 * sender's TLS stack: an agent lives as long as its run, so what it maps stays resident
 * (about 3 MiB instead of 9) and it starts a few milliseconds sooner. The local executor runs
 * the eph-agent installed next to eph, else `eph agent`.
 *
 * A remote executor ships this one file to a host and drives it there over ssh with three more
 * forms, so that a host needs nothing but a POSIX shell (docs/remote.md, "On a host"):
 *   eph-agent --detach RUN_DIR   starts the agent in a session of its own, its output into
 *                                RUN_DIR/agent.log, and prints its pid: it outlives the ssh
 *                                connection that started it;
 *   eph-agent --inspect RUN_DIR  prints what the run is, as the local executor tells it:
 *                                "alive PID", "finished", "lost", or "unstarted";
 *   eph-agent --cancel RUN_DIR   sends the run's agent SIGTERM (it stops its command and
 *                                records the run cancelled): prints "sent" or "gone". */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "rundir/rundir.h"
#include "rundir/runlock.h"
#include "util/xalloc.h"

static int
usage(FILE *f, int rc)
{
	fprintf(f, "usage: eph-agent RUN_DIR\n"
	           "       eph-agent --detach|--inspect|--cancel RUN_DIR\n");
	return rc;
}

static int
agent_detach(const char *dir)
{
	char *log = xasprintf("%s/agent.log", dir);
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pid_t pid;

	if (fd < 0 || null < 0) {
		fprintf(stderr, "eph-agent: cannot open %s: %s\n", fd < 0 ? log : "/dev/null",
		        strerror(errno));
		free(log);
		return 1;
	}
	free(log);
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "eph-agent: cannot fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid > 0) {
		printf("%d\n", (int)pid);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	/* the child: a session of its own, so that no hangup of the connection reaches it */
	if (setsid() < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		_exit(1);
	close(null);
	close(fd);
	exit(agent_main(dir));
}

static int
agent_inspect(const char *dir)
{
	char *res = xasprintf("%s/%s", dir, RUNDIR_RESULT);
	enum runlock_state ls;
	uint64_t start = 0;
	pid_t pid = 0;
	bool done = access(res, F_OK) == 0;

	free(res);
	if (done) {
		puts("finished");
		return 0;
	}
	if (rundir_pid_read(dir, &pid, &start) < 0)
		pid = 0;
	if (pid != 0 && rundir_pid_alive(pid, start)) {
		printf("alive %d\n", (int)pid);
		return 0;
	}
	if (runlock_inspect(dir, &ls) < 0 || ls == RUNLOCK_HELD)
		printf("alive %d\n", (int)pid); /* being started, or cannot tell */
	else if (access(dir, F_OK) < 0)
		puts("missing");
	else if (ls == RUNLOCK_PREPARED || (ls == RUNLOCK_NONE && pid == 0))
		puts("unstarted");
	else
		puts("lost");
	return 0;
}

static int
agent_cancel(const char *dir)
{
	uint64_t start = 0;
	pid_t pid = 0;

	if (rundir_pid_read(dir, &pid, &start) < 0 || pid <= 0 || !rundir_pid_alive(pid, start)) {
		puts("gone");
		return 0;
	}
	if (kill(pid, SIGTERM) < 0) {
		puts(errno == ESRCH ? "gone" : "failed");
		return errno == ESRCH ? 0 : 1;
	}
	puts("sent");
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: eph-agent RUN_DIR\n       eph-agent --detach|--inspect|--cancel "
		       "RUN_DIR\n\nExecutes one run: what `eph agent RUN_DIR` does "
		       "(see eph agent --help).\n");
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "--detach") == 0)
		return agent_detach(argv[2]);
	if (argc == 3 && strcmp(argv[1], "--inspect") == 0)
		return agent_inspect(argv[2]);
	if (argc == 3 && strcmp(argv[1], "--cancel") == 0)
		return agent_cancel(argv[2]);
	if (argc != 2 || argv[1][0] == '-')
		return usage(stderr, 2);
	return agent_main(argv[1]);
}
