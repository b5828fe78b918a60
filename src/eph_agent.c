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
 *                                connection that started it; when the run's spec.json names
 *                                secrets, what its own stdin holds (the secrets' blob, read
 *                                whole first) goes to the agent's stdin through a pipe, never
 *                                through a file;
 *   eph-agent --inspect RUN_DIR  prints what the run is, as the local executor tells it:
 *                                "alive PID", "finished", "lost", or "unstarted";
 *   eph-agent --cancel RUN_DIR   sends the run's agent SIGTERM (it stops its command and
 *                                records the run cancelled): prints "sent" or "gone";
 *   eph-agent --follow RUN_DIR OUT EV
 *                                streams the run's files as they grow, from byte OUT of
 *                                output.log and EV of events.jsonl, until the agent is gone
 *                                (follow_main: the frames). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "rundir/results.h"
#include "rundir/rundir.h"
#include "rundir/runlock.h"
#include "util/diag.h"
#include "util/xalloc.h"

static int
usage(FILE *f, int rc)
{
	fprintf(f, "usage: eph-agent RUN_DIR\n"
	           "       eph-agent --detach|--inspect|--cancel RUN_DIR\n");
	return rc;
}

/* Whether the spec.json of run DIR names secrets (a bad spec: the agent says so itself). */
static bool
spec_has_secrets(const char *dir)
{
	struct rundir_spec sp;
	struct diag d;
	bool has = false;

	diag_init(&d);
	if (rundir_spec_read(dir, &sp, &d) == 0) {
		has = sp.nsecrets > 0;
		rundir_spec_free(&sp);
	}
	diag_free(&d);
	return has;
}

/* Reads our stdin whole, to one byte past what the agent takes (so that it can tell that
 * there was more): the length, into *B (RUNDIR_SECRETS_MAX + 1 bytes, caller wipes and frees).
 */
static size_t
read_blob(char **b)
{
	size_t n = 0;
	ssize_t r;

	*b = xmalloc(RUNDIR_SECRETS_MAX + 1);
	while (n < RUNDIR_SECRETS_MAX + 1) {
		r = read(0, *b + n, RUNDIR_SECRETS_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break; /* a read error: the agent finds what it lacks and says so */
		n += (size_t)r;
	}
	return n;
}

static int
agent_detach(const char *dir)
{
	char *log = xasprintf("%s/agent.log", dir);
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int sp[2] = { -1, -1 };
	char *blob = NULL;
	size_t blen = 0;
	pid_t pid;

	if (fd < 0 || null < 0) {
		fprintf(stderr, "eph-agent: cannot open %s: %s\n", fd < 0 ? log : "/dev/null",
		        strerror(errno));
		free(log);
		return 1;
	}
	free(log);
	if (spec_has_secrets(dir)) {
		blen = read_blob(&blob);
		if (pipe2(sp, O_CLOEXEC) < 0) {
			fprintf(stderr, "eph-agent: cannot make a pipe: %s\n", strerror(errno));
			explicit_bzero(blob, RUNDIR_SECRETS_MAX + 1);
			free(blob);
			return 1;
		}
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "eph-agent: cannot fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid > 0) {
		if (blob != NULL) {
			/* the agent reads it whole first thing; one that died first: a failed
			 * write, not SIGPIPE */
			signal(SIGPIPE, SIG_IGN);
			close(sp[0]);
			for (size_t off = 0; off < blen;) {
				ssize_t w = write(sp[1], blob + off, blen - off);

				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0)
					break;
				off += (size_t)w;
			}
			close(sp[1]);
			explicit_bzero(blob, RUNDIR_SECRETS_MAX + 1);
			free(blob);
		}
		printf("%d\n", (int)pid);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	/* the child: a session of its own, so that no hangup of the connection reaches it */
	if (sp[0] >= 0) {
		explicit_bzero(blob, RUNDIR_SECRETS_MAX + 1); /* its copy: the pipe brings them */
		free(blob);
		close(sp[1]);
	}
	if (setsid() < 0 || dup2(sp[0] >= 0 ? sp[0] : null, 0) < 0 || dup2(fd, 1) < 0 ||
	    dup2(fd, 2) < 0)
		_exit(1);
	if (sp[0] >= 0)
		close(sp[0]);
	close(null);
	close(fd);
	exit(agent_main(dir));
}

/* Prints PREFIX and what the run in DIR is: "alive PID", "finished", "lost", "unstarted" or
 * "missing". */
static int
agent_inspect_to(const char *dir, const char *prefix)
{
	char *res = xasprintf("%s/%s", dir, RUNDIR_RESULT);
	enum runlock_state ls;
	uint64_t start = 0;
	pid_t pid = 0;
	bool done = access(res, F_OK) == 0;

	free(res);
	if (done) {
		printf("%sfinished\n", prefix);
		return 0;
	}
	if (rundir_pid_read(dir, &pid, &start) < 0)
		pid = 0;
	if (pid != 0 && rundir_pid_alive(pid, start)) {
		printf("%salive %d\n", prefix, (int)pid);
		return 0;
	}
	if (runlock_inspect(dir, &ls) < 0 || ls == RUNLOCK_HELD)
		printf("%salive %d\n", prefix, (int)pid); /* being started, or cannot tell */
	else if (access(dir, F_OK) < 0)
		printf("%smissing\n", prefix);
	else if (ls == RUNLOCK_PREPARED || (ls == RUNLOCK_NONE && pid == 0))
		printf("%sunstarted\n", prefix);
	else
		printf("%slost\n", prefix);
	return 0;
}

static int
agent_inspect(const char *dir)
{
	return agent_inspect_to(dir, "");
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

#define FOLLOW_CHUNK     (256u << 10) /* bytes of a file per frame */
#define FOLLOW_CHECK_MS  1000         /* the agent's liveness, without an event */
#define FOLLOW_HEARTBEAT 5            /* seconds of silence before an "h" frame */

/* Writes all of P[0..N) to stdout: false when the connection is gone. */
static bool
out_all(const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(1, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		c += w;
		n -= (size_t)w;
	}
	return true;
}

/* Sends what DIR/NAME holds past *OFF as frames "TAG OFFSET LEN\n" + bytes. False when the
 * connection is gone. */
static bool
follow_file(const char *dir, const char *name, char tag, int64_t *off, char *chunk)
{
	char *p = xasprintf("%s/%s", dir, name), head[64];
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	ssize_t got;
	bool ok = true;

	free(p);
	if (fd < 0)
		return true; /* not there yet */
	while (ok && (got = pread(fd, chunk, FOLLOW_CHUNK, (off_t)*off)) > 0) {
		int n = snprintf(head, sizeof(head), "%c %" PRId64 " %zd\n", tag, *off, got);

		ok = out_all(head, (size_t)n) && out_all(chunk, (size_t)got);
		*off += got;
	}
	close(fd);
	return ok;
}

/* Sends the files under DIR/results as frames "f OFFSET LEN PATH\n" + LEN bytes, FOLLOW_CHUNK at
 * most each, from offset 0 (an empty file: one frame of LEN 0). A path with a newline cannot be
 * framed: left out. False when the connection is gone. */
static bool
follow_results(const char *dir, char *chunk)
{
	struct results_file *f = NULL;
	size_t n = 0;
	bool ok = true;
	char *top = xasprintf("%s/%s", dir, RUNDIR_RESULTS);

	if (results_list(dir, &f, &n) < 0)
		n = 0; /* what cannot be read stays on the host, as the run's record says */
	for (size_t i = 0; ok && i < n; i++) {
		char *p;
		int fd;
		int64_t off = 0;
		ssize_t got;

		if (strchr(f[i].path, '\n') != NULL)
			continue;
		p = xasprintf("%s/%s", top, f[i].path);
		fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		free(p);
		if (fd < 0)
			continue;
		do {
			char *head;

			got = pread(fd, chunk, FOLLOW_CHUNK, (off_t)off);
			if (got < 0)
				break;
			head = xasprintf("f %" PRId64 " %zd %s\n", off, got, f[i].path);
			ok = out_all(head, strlen(head)) && out_all(chunk, (size_t)got);
			free(head);
			off += got;
		} while (ok && got > 0);
		close(fd);
	}
	free(top);
	results_files_free(f, n);
	return ok;
}

/* `--follow DIR OUT EV`: frames on stdout, each a line then maybe bytes:
 *   o OFFSET LEN  + LEN bytes of output.log at OFFSET
 *   e OFFSET LEN  + LEN bytes of events.jsonl at OFFSET
 *   h             nothing new for a while (the connection is still there)
 *   r LEN         + result.json, whole, once the agent wrote it
 *   f OFF LEN PATH + LEN bytes at OFF of results/PATH, after the result (follow_results;
 *                  a stream started again sends them all again, each from 0)
 *   x STATE       the end: the agent is gone (STATE as --inspect says), everything is sent.
 * It wakes on inotify events of DIR, and every second to ask whether the agent is alive. */
static int
agent_follow(const char *dir, const char *s_out, const char *s_ev)
{
	int64_t off_out = strtoll(s_out, NULL, 10), off_ev = strtoll(s_ev, NULL, 10);
	char *chunk = xmalloc(FOLLOW_CHUNK), *res = xasprintf("%s/%s", dir, RUNDIR_RESULT);
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC), rc = 0;
	time_t last = time(NULL);

	signal(SIGPIPE, SIG_DFL); /* a connection gone ends it */
	if (in >= 0 && inotify_add_watch(in, dir,
	                                 IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE |
	                                         IN_DELETE_SELF) < 0) {
		close(in);
		in = -1; /* a second's tick alone */
	}
	for (;;) {
		struct pollfd pf = { in, POLLIN, 0 };
		enum runlock_state ls;
		uint64_t start = 0;
		pid_t pid = 0;
		bool gone, done = access(res, F_OK) == 0;

		if (!done) {
			if (rundir_pid_read(dir, &pid, &start) < 0)
				pid = 0;
			gone = !(pid != 0 && rundir_pid_alive(pid, start)) &&
			       !(runlock_inspect(dir, &ls) < 0 || ls == RUNLOCK_HELD);
		} else {
			gone = true;
		}
		if (!follow_file(dir, RUNDIR_OUTPUT, 'o', &off_out, chunk) ||
		    !follow_file(dir, RUNDIR_EVENTS, 'e', &off_ev, chunk)) {
			rc = 1;
			break;
		}
		if (gone) {
			char head[64];
			int fd = open(res, O_RDONLY | O_CLOEXEC);
			ssize_t got = fd >= 0 ? read(fd, chunk, FOLLOW_CHUNK) : -1;

			if (fd >= 0)
				close(fd);
			if (got > 0) {
				int n = snprintf(head, sizeof(head), "r %zd\n", got);

				if (!out_all(head, (size_t)n) || !out_all(chunk, (size_t)got)) {
					rc = 1;
					break;
				}
			}
			if (!follow_results(dir, chunk)) {
				rc = 1;
				break;
			}
			(void)agent_inspect_to(dir, "x ");
			rc = fflush(stdout) == 0 ? 0 : 1;
			break;
		}
		if (time(NULL) - last >= FOLLOW_HEARTBEAT) {
			if (!out_all("h\n", 2)) {
				rc = 1;
				break;
			}
			last = time(NULL);
		}
		if (in >= 0 && poll(&pf, 1, FOLLOW_CHECK_MS) > 0) {
			char ev[4096];

			while (read(in, ev, sizeof(ev)) > 0)
				;
		} else if (in < 0) {
			struct timespec ts = { 0, 200 * 1000 * 1000 };

			nanosleep(&ts, NULL);
		}
	}
	if (in >= 0)
		close(in);
	free(chunk);
	free(res);
	return rc;
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
	if (argc == 5 && strcmp(argv[1], "--follow") == 0)
		return agent_follow(argv[2], argv[3], argv[4]);
	if (argc != 2 || argv[1][0] == '-')
		return usage(stderr, 2);
	return agent_main(argv[1]);
}
