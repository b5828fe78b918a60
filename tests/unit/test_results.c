/* tests/unit/test_results.c: a run's results (rundir/results.h) listed and copied out, and a
 * run's private copy of a read-only tree (rundir/treecopy.h). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "rundir/results.h"
#include "rundir/treecopy.h"
#include "tmpfx.h"
#include "util/xalloc.h"

static void
put(const char *dir, const char *rel, const char *text)
{
	char *p = xasprintf("%s/%s", dir, rel);
	FILE *f = fopen(p, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	free(p);
}

static char *
get(const char *dir, const char *rel)
{
	char *p = xasprintf("%s/%s", dir, rel), *buf = xcalloc(1, 4096);
	FILE *f = fopen(p, "r");

	assert_non_null(f);
	(void)fread(buf, 1, 4095, f);
	fclose(f);
	free(p);
	return buf;
}

static void
sub(const char *dir, const char *rel)
{
	char *p = xasprintf("%s/%s", dir, rel);

	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
}

static void
no_results_dir_lists_none(void **state)
{
	struct results_file *f = (void *)1;
	size_t n = 7;

	assert_int_equal(results_list(*state, &f, &n), 0);
	assert_null(f);
	assert_int_equal(n, 0);
}

static void
regular_files_listed_by_path_and_copied_out(void **state)
{
	const char *dir = *state;
	char *res = xasprintf("%s/%s", dir, RUNDIR_RESULTS), *to = xasprintf("%s/to", dir), *s;
	char *link = xasprintf("%s/link", res), *failed = NULL;
	struct results_file *f;
	size_t n;

	sub(dir, RUNDIR_RESULTS);
	sub(res, "out");
	put(res, "out/report.csv", "a,b\n");
	put(res, "b.txt", "bee");
	assert_int_equal(symlink("/etc/passwd", link), 0); /* never a result */
	assert_int_equal(results_list(dir, &f, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(f[0].path, "b.txt");
	assert_int_equal(f[0].size, 3);
	assert_string_equal(f[1].path, "out/report.csv");
	assert_int_equal(f[1].size, 4);
	assert_int_equal(results_copy(dir, f, n, to, &failed), 0);
	assert_null(failed);
	s = get(to, "out/report.csv");
	assert_string_equal(s, "a,b\n");
	free(s);
	s = get(to, "b.txt");
	assert_string_equal(s, "bee");
	free(s);
	results_files_free(f, n);
	free(link);
	free(res);
	free(to);
}

static void
treecopy_makes_a_writable_copy_and_removes_it(void **state)
{
	const char *dir = *state;
	char *from = xasprintf("%s/shared", dir), *to = xasprintf("%s/work", dir);
	char *p = xasprintf("%s/code/a.py", from), *q = xasprintf("%s/code/a.py", to), *s;
	char *lnk = xasprintf("%s/l", to), tgt[64];
	struct stat st, st2;
	ssize_t k;

	sub(dir, "shared");
	sub(from, "code");
	put(from, "code/a.py", "print(1)\n");
	{
		char *l = xasprintf("%s/l", from);

		assert_int_equal(symlink("code/a.py", l), 0);
		free(l);
	}
	assert_int_equal(chmod(p, 0444), 0);
	{
		char *c = xasprintf("%s/code", from);

		assert_int_equal(chmod(c, 0555), 0);
		free(c);
	}
	assert_int_equal(treecopy(from, to, NULL), 0);
	s = get(to, "code/a.py");
	assert_string_equal(s, "print(1)\n");
	free(s);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(stat(q, &st2), 0);
	assert_int_equal(st2.st_mode & 0777, 0644); /* owner write added */
	assert_int_equal(st2.st_mtim.tv_sec, st.st_mtim.tv_sec);
	k = readlink(lnk, tgt, sizeof(tgt) - 1);
	assert_true(k > 0);
	tgt[k] = '\0';
	assert_string_equal(tgt, "code/a.py");
	put(to, "code/new.csv", "x"); /* writable */
	assert_int_equal(treecopy(from, to, NULL), -EEXIST);
	assert_int_equal(treecopy_remove(to), 0);
	assert_int_equal(access(to, F_OK), -1);
	assert_int_equal(treecopy_remove(to), 0); /* gone is fine */
	assert_int_equal(stat(p, &st2), 0);       /* the shared tree is untouched */
	assert_int_equal(st2.st_mode & 0777, 0444);
	free(lnk);
	free(p);
	free(q);
	free(from);
	free(to);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(no_results_dir_lists_none, tmpfx_setup,
		                                tmpfx_teardown),
		cmocka_unit_test_setup_teardown(regular_files_listed_by_path_and_copied_out,
		                                tmpfx_setup, tmpfx_teardown),
		cmocka_unit_test_setup_teardown(treecopy_makes_a_writable_copy_and_removes_it,
		                                tmpfx_setup, tmpfx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
