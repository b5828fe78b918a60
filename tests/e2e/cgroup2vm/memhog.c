/* tests/e2e/cgroup2vm/memhog.c: the command of the cgroup v2 VM test (test_cgroup2_vm.py),
 * linked statically so that it runs in the guest's initramfs beside the static eph-agent.
 *
 *   memhog alloc MIB KIDS PIDFILE  forks KIDS children that sleep, writes every pid of the
 *                                  group to PIDFILE, then allocates MIB MiB and touches every
 *                                  page; exits 0 (the children are left for the agent)
 *   memhog tree PIDFILE            a tree that ignores SIGTERM (two children, one in its own
 *                                  session, and an orphaned grandchild), its pids in PIDFILE;
 *                                  sleeps until killed
 *
 * PIDFILE holds one pid a line, written in one write(2) by each process, so the guest can
 * tell afterwards whether any of them outlived the run. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static const char *pidfile;

static void
note_pid(void)
{
	char line[32];
	int fd = open(pidfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	int n = snprintf(line, sizeof(line), "%d\n", (int)getpid());

	if (fd < 0 || write(fd, line, (size_t)n) != n) {
		fprintf(stderr, "memhog: %s: %s\n", pidfile, strerror(errno));
		exit(3);
	}
	close(fd);
}

static void
sleep_forever(void)
{
	for (;;)
		pause();
}

/* A child that notes its pid and sleeps; the parent goes on. */
static void
spawn_sleeper(void (*before)(void))
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("memhog: fork");
		exit(3);
	}
	if (pid > 0)
		return;
	if (before != NULL)
		before();
	note_pid();
	sleep_forever();
}

static void
own_session(void)
{
	(void)setsid();
}

/* The grandchild's parent exits at once: the grandchild is orphaned (reparented to the agent,
 * a child subreaper). */
static void
orphan(void)
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("memhog: fork");
		exit(3);
	}
	if (pid > 0)
		_exit(0);
}

static int
alloc(size_t mib, int kids)
{
	size_t n = mib << 20;
	char *p;

	for (int i = 0; i < kids; i++)
		spawn_sleeper(NULL);
	note_pid();
	if ((p = malloc(n)) == NULL) {
		fprintf(stderr, "memhog: cannot allocate %zu MiB\n", mib);
		return 3;
	}
	memset(p, 1, n);
	/* p is read: the memset stays */
	printf("touched %zu MiB (%d)\n", mib, p[n / 2]);
	free(p);
	return 0;
}

static int
tree(void)
{
	signal(SIGTERM, SIG_IGN); /* inherited: only SIGKILL ends this tree */
	spawn_sleeper(NULL);
	spawn_sleeper(own_session);
	spawn_sleeper(orphan);
	note_pid();
	printf("tree started\n");
	fflush(stdout);
	sleep_forever();
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "alloc") == 0) {
		pidfile = argv[4];
		return alloc(strtoul(argv[2], NULL, 10), atoi(argv[3]));
	}
	if (argc == 3 && strcmp(argv[1], "tree") == 0) {
		pidfile = argv[2];
		return tree();
	}
	fprintf(stderr, "usage: memhog alloc MIB KIDS PIDFILE | memhog tree PIDFILE\n");
	return 2;
}
