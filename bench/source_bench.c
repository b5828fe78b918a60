/* bench/source_bench.c: time from "a run is created" to the command's execve through the
 * source layer: source_resolve (scheduler side), then source_checkout (agent side), then
 * posix_spawn of the command, which prints its own start time (date +%s%N). Built and driven
 * by bench/source.sh. Usage: source_bench STATE URL N */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "conf/conf.h"
#include "source/source.h"
#include "util/diag.h"

extern char **environ;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct conf_source src = { .refresh = 3600, .fetch_timeout = 60, .keep_worktrees = 5 };
	int n = argc > 3 ? atoi(argv[3]) : 1;

	if (argc < 3) {
		fprintf(stderr, "usage: source_bench STATE URL [N]\n");
		return 2;
	}
	src.repo = argv[2];
	for (int i = 0; i < n; i++) {
		struct source_pin pin;
		struct source_worktree wt;
		struct diag d;
		char *args[] = { "date", "+%s.%N", NULL };
		double t0 = now(), t1, t2, t3;
		int pipefd[2], status;
		char line[64] = "";
		posix_spawn_file_actions_t fa;
		pid_t pid;
		FILE *f;

		diag_init(&d);
		if (source_resolve(argv[1], &src, ".", &pin, &d) < 0 || pin.in_place) {
			diag_print(&d, stderr);
			return 1;
		}
		t1 = now();
		if (source_checkout(argv[1], pin.mirror, pin.commit, 5, &wt, &d) < 0) {
			diag_print(&d, stderr);
			return 1;
		}
		t2 = now();
		if (pipe(pipefd) < 0)
			return 1;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
		posix_spawn_file_actions_addclose(&fa, pipefd[0]);
		posix_spawn_file_actions_addchdir_np(&fa, wt.path);
		if (posix_spawnp(&pid, "date", &fa, NULL, args, environ) != 0)
			return 1;
		close(pipefd[1]);
		f = fdopen(pipefd[0], "r");
		if (fgets(line, sizeof(line), f) == NULL)
			return 1;
		fclose(f);
		waitpid(pid, &status, 0);
		t3 = atof(line);
		printf("%s resolve %.1f ms, checkout %.1f ms, spawn->exec %.1f ms, total %.1f ms\n",
		       wt.built ? "cold" : "warm", (t1 - t0) * 1e3, (t2 - t1) * 1e3,
		       (t3 - t2) * 1e3, (t3 - t0) * 1e3);
		posix_spawn_file_actions_destroy(&fa);
		source_worktree_release(&wt);
		source_pin_clear(&pin);
		diag_free(&d);
	}
	return 0;
}
