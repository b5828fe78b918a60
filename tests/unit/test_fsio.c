/* tests/unit/test_fsio.c: file-system helpers on a real temporary directory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/fsio.h"
#include "util/xalloc.h"

static void
mkdirs_makes_every_missing_parent_with_the_mode(void **state)
{
	char tmpl[] = "/tmp/eph-fsio-XXXXXX";
	char *root = mkdtemp(tmpl), *deep, *mid, *file, *under;
	struct stat st;
	FILE *f;

	(void)state;
	assert_non_null(root);
	deep = xasprintf("%s/a/b/c", root);
	mid = xasprintf("%s/a/b", root);
	assert_int_equal(fsio_mkdirs(deep, 0700), 0);
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	/* again: everything exists already */
	assert_int_equal(fsio_mkdirs(deep, 0700), 0);
	/* a file in the way is the error of the mkdir that met it */
	file = xasprintf("%s/a/file", root);
	f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	under = xasprintf("%s/x/y", file);
	assert_int_equal(fsio_mkdirs(under, 0700), -ENOTDIR);
	unlink(file);
	rmdir(deep);
	rmdir(mid);
	free(deep);
	deep = xasprintf("%s/a", root);
	rmdir(deep);
	rmdir(root);
	free(deep);
	free(mid);
	free(file);
	free(under);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mkdirs_makes_every_missing_parent_with_the_mode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
