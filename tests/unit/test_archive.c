/* tests/unit/test_archive.c: the commit archives a remote run carries (source/archive.h),
 * made from a real bare repository (the fixture's origin.git stands for the scheduler's mirror,
 * which is a bare repository too). The test drives git and tar through system(). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "gitfx.h"
#include "source/archive.h"
#include "source/source.h"
#include "util/diag.h"
#include "util/xalloc.h"

static bool exists(const char *fmt, ...) EPH_PRINTF(1, 2);

static bool
exists(const char *fmt, ...)
{
	struct stat st;
	va_list ap;
	char *p;
	bool ok;

	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		p = NULL;
	va_end(ap);
	assert_non_null(p);
	ok = lstat(p, &st) == 0;
	free(p);
	return ok;
}

static void
archive_is_git_archive_of_the_commit_and_nothing_else(void **state)
{
	struct gitfx *f = *state;
	char *c1 = gitfx_commit_push(f, "a.txt", "one");
	char *c2, *want, *list;
	struct archive a;
	struct diag d;

	gitfx_sh("mkdir -p %s/work/sub && echo deep > %s/work/sub/b.py && git -C %s/work add -A && "
	         "git -C %s/work commit -qm sub && git -C %s/work push -q origin HEAD",
	         f->root, f->root, f->root, f->root, f->root);
	c2 = gitfx_commit_push(f, "a.txt", "two"); /* the archive is of C1, not the tip */
	diag_init(&d);
	assert_int_equal(archive_get(f->state, f->origin, c1, 0, &a, &d), 0);
	assert_true(a.built);
	assert_true(a.hold_fd >= 0);
	want = xasprintf("%s/state/archives/%s.tar", f->root, c1);
	assert_string_equal(a.path, want);
	/* byte for byte what git archive gives */
	gitfx_sh("git --git-dir=%s archive --format=tar %s > %s/want.tar && cmp -s %s %s/want.tar",
	         f->origin, c1, f->root, a.path, f->root);
	/* the commit's files and nothing else: no .git, no b.py (added after C1) */
	list = gitfx_sh_out("tar -tf %s | sort | tr '\\n' ' '", a.path);
	assert_string_equal(list, "a.txt ");
	free(list);
	list = gitfx_sh_out("git get-tar-commit-id < %s", a.path);
	assert_string_equal(list, c1);
	free(list);
	assert_false(exists("%s/state/archives/%s.tar.tmp", f->root, c1));
	archive_release(&a);
	assert_int_equal(a.hold_fd, -1);

	/* a later commit with a subdirectory: extracted, it is the tree of that commit */
	free(c2);
	c2 = gitfx_sh_out("git -C %s/work rev-parse HEAD~1", f->root);
	assert_int_equal(archive_get(f->state, f->origin, c2, 0, &a, &d), 0);
	gitfx_sh("mkdir %s/x && tar -xf %s -C %s/x && test \"$(cat %s/x/sub/b.py)\" = deep && "
	         "test \"$(cat %s/x/a.txt)\" = one && test ! -e %s/x/.git",
	         f->root, a.path, f->root, f->root, f->root, f->root);
	archive_release(&a);
	assert_int_equal(diag_nerrors(&d), 0);
	diag_free(&d);
	free(want);
	free(c1);
	free(c2);
}

static void
archive_is_made_once_then_reused(void **state)
{
	struct gitfx *f = *state;
	char *c = gitfx_commit_push(f, "a.txt", "one");
	struct archive a, b;
	struct stat s1, s2;
	struct diag d;

	diag_init(&d);
	assert_int_equal(archive_get(f->state, f->origin, c, 0, &a, &d), 0);
	assert_true(a.built);
	assert_int_equal(stat(a.path, &s1), 0);
	/* held twice at once: shared holds */
	assert_int_equal(archive_get(f->state, f->origin, c, 0, &b, &d), 0);
	assert_false(b.built);
	assert_int_equal(stat(b.path, &s2), 0);
	assert_true(s1.st_ino == s2.st_ino);
	archive_release(&a);
	archive_release(&b);
	diag_free(&d);
	free(c);
}

static void
two_processes_build_it_once(void **state)
{
	struct gitfx *f = *state;
	char *c = gitfx_commit_push(f, "a.txt", "one");
	pid_t pids[4];
	int built = 0;

	for (int i = 0; i < 4; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct archive a;
			struct diag d;
			int rc;

			diag_init(&d);
			rc = archive_get(f->state, f->origin, c, 0, &a, &d);
			_exit(rc < 0 ? 2 : a.built ? 1 : 0);
		}
	}
	for (int i = 0; i < 4; i++) {
		int st;

		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st));
		assert_true(WEXITSTATUS(st) <= 1);
		built += WEXITSTATUS(st);
	}
	assert_int_equal(built, 1);
	free(c);
}

static void
unknown_or_malformed_commit_fails_and_leaves_nothing(void **state)
{
	struct gitfx *f = *state;
	const char *ghost = "0123456789abcdef0123456789abcdef01234567";
	char *msg;
	struct archive a;
	struct diag d;

	free(gitfx_commit_push(f, "a.txt", "one"));
	diag_init(&d);
	assert_int_equal(archive_get(f->state, f->origin, ghost, 0, &a, &d), -EIO);
	assert_null(a.path);
	assert_int_equal(a.hold_fd, -1);
	msg = diag_format(&d, 0);
	assert_non_null(strstr(msg, "cannot archive commit 0123456789abcdef"));
	free(msg);
	assert_false(exists("%s/archives/%s.tar", f->state, ghost));
	assert_false(exists("%s/archives/%s.tar.tmp", f->state, ghost));
	diag_free(&d);

	diag_init(&d);
	assert_int_equal(archive_get(f->state, f->origin, "main", 0, &a, &d), -EINVAL);
	assert_int_equal(archive_get(f->state, f->origin, "--output=/tmp/x", 0, &a, &d), -EINVAL);
	assert_int_equal(diag_nerrors(&d), 2);
	diag_free(&d);
}

static void
held_archive_is_not_removed(void **state)
{
	struct gitfx *f = *state;
	char *c = gitfx_commit_push(f, "a.txt", "one"), *dir, *key;
	struct archive a;
	struct diag d;
	uint64_t freed = 0;

	diag_init(&d);
	assert_int_equal(archive_get(f->state, f->origin, c, 0, &a, &d), 0);
	dir = xasprintf("%s/%s", f->state, ARCHIVE_DIR);
	key = xasprintf("%s%s", c, ARCHIVE_SUFFIX);
	assert_int_equal(source_cache_remove(dir, key, false, &freed), -EBUSY);
	archive_release(&a);
	assert_int_equal(source_cache_remove(dir, key, false, &freed), 0);
	assert_true(freed > 0);
	assert_false(exists("%s/%s", dir, key));
	assert_false(exists("%s/%s.lock", dir, key));
	free(dir);
	free(key);
	diag_free(&d);
	free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		        archive_is_git_archive_of_the_commit_and_nothing_else, gitfx_setup,
		        gitfx_teardown),
		cmocka_unit_test_setup_teardown(archive_is_made_once_then_reused, gitfx_setup,
		                                gitfx_teardown),
		cmocka_unit_test_setup_teardown(two_processes_build_it_once, gitfx_setup,
		                                gitfx_teardown),
		cmocka_unit_test_setup_teardown(
		        unknown_or_malformed_commit_fails_and_leaves_nothing, gitfx_setup,
		        gitfx_teardown),
		cmocka_unit_test_setup_teardown(held_archive_is_not_removed, gitfx_setup,
		                                gitfx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
