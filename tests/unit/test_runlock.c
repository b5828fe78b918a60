/* tests/unit/test_runlock.c: the run's lock, agent.lock: held, handed over, marked. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "rundir/rundir.h"
#include "rundir/runlock.h"
#include "tmpfx.h"
#include "util/xalloc.h"

static enum runlock_state
inspect(const char *dir)
{
	enum runlock_state st;

	assert_int_equal(runlock_inspect(dir, &st), 0);
	return st;
}

static void
no_file_is_none_and_inspecting_creates_none(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/%s", dir, RUNLOCK_FILE);

	assert_int_equal(inspect(dir), RUNLOCK_NONE);
	assert_int_equal(access(path, F_OK), -1);
	free(path);
}

static void
a_held_lock_is_held_and_refused_until_closed(void **state)
{
	const char *dir = *state;
	int fd, fd2;

	assert_int_equal(runlock_take(dir, &fd), 0);
	assert_int_equal(inspect(dir), RUNLOCK_HELD);
	assert_int_equal(runlock_take(dir, &fd2), -EBUSY);
	assert_int_equal(fd2, -1);
	close(fd);
	assert_int_equal(inspect(dir), RUNLOCK_PREPARED);
}

static void
the_exec_mark_forbids_a_second_start(void **state)
{
	const char *dir = *state;
	int fd, fd2;

	assert_int_equal(runlock_take(dir, &fd), 0);
	assert_int_equal(runlock_mark_exec(fd), 0);
	close(fd);
	assert_int_equal(inspect(dir), RUNLOCK_EXEC);
	assert_int_equal(runlock_take(dir, &fd2), -EALREADY);
	assert_int_equal(runlock_adopt(dir, -1, &fd2), -EALREADY);
	/* and the refusal left the lock free */
	assert_int_equal(inspect(dir), RUNLOCK_EXEC);
}

static void
a_result_forbids_a_start(void **state)
{
	const char *dir = *state;
	char *res = xasprintf("%s/%s", dir, RUNDIR_RESULT);
	int fd = open(res, O_WRONLY | O_CREAT, 0600);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(runlock_take(dir, &fd), -EALREADY);
	assert_int_equal(inspect(dir), RUNLOCK_PREPARED);
	free(res);
}

/* The starter's lock, inherited by a child as RUNLOCK_FD, stays held after the starter closed
 * its copy, and is the child's to adopt; another open of the file cannot take it. */
static void
the_lock_is_handed_over_to_a_child(void **state)
{
	const char *dir = *state;
	int fd, go[2], done[2];
	char c;
	pid_t pid;
	int st;

	assert_int_equal(runlock_take(dir, &fd), 0);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(done), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int held;

		close(go[1]); /* the parent's close of its end is our EOF */
		if (dup2(fd, RUNLOCK_FD) < 0 || read(go[0], &c, 1) != 1)
			_exit(10);
		if (runlock_adopt(dir, RUNLOCK_FD, &held) != 0 || held != RUNLOCK_FD)
			_exit(11);
		if ((fcntl(held, F_GETFD) & FD_CLOEXEC) == 0)
			_exit(12);
		if (runlock_mark_exec(held) != 0 || write(done[1], "m", 1) != 1)
			_exit(13);
		(void)read(go[0], &c, 1); /* hold it until told */
		_exit(0);
	}
	close(fd); /* the starter lets go: the child's copy holds it */
	assert_int_equal(inspect(dir), RUNLOCK_HELD);
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(read(done[0], &c, 1), 1);
	assert_int_equal(inspect(dir), RUNLOCK_HELD);
	close(go[1]); /* EOF: the child exits, and the lock is free with the mark */
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(inspect(dir), RUNLOCK_EXEC);
	close(go[0]);
	close(done[0]);
	close(done[1]);
}

static void
an_empty_dir_is_refused(void **state)
{
	int fd;

	(void)state;
	assert_int_equal(runlock_take("", &fd), -EINVAL);
	assert_int_equal(runlock_adopt("", -1, &fd), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(no_file_is_none_and_inspecting_creates_none,
		                                tmpfx_setup, tmpfx_teardown),
		cmocka_unit_test_setup_teardown(a_held_lock_is_held_and_refused_until_closed,
		                                tmpfx_setup, tmpfx_teardown),
		cmocka_unit_test_setup_teardown(the_exec_mark_forbids_a_second_start, tmpfx_setup,
		                                tmpfx_teardown),
		cmocka_unit_test_setup_teardown(a_result_forbids_a_start, tmpfx_setup,
		                                tmpfx_teardown),
		cmocka_unit_test_setup_teardown(the_lock_is_handed_over_to_a_child, tmpfx_setup,
		                                tmpfx_teardown),
		cmocka_unit_test(an_empty_dir_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
