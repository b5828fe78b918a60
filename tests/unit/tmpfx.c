/* tests/unit/tmpfx.c: temporary directories for unit tests (tmpfx.h). */
#include "tmpfx.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/xalloc.h"

const char *
tmpfx_name(void)
{
	const char *n = program_invocation_short_name;

	return strncmp(n, "test_", 5) == 0 ? n + 5 : n;
}

char *
tmpfx_dir(const char *name)
{
	char *tmpl = xasprintf("/tmp/eph-test-%s-XXXXXX", name);

	assert_non_null(mkdtemp(tmpl));
	return tmpl;
}

void
tmpfx_remove(const char *dir)
{
	char *cmd = xasprintf("chmod -R u+w '%s' && rm -rf '%s'", dir, dir);
	int rc = system(cmd);

	if (rc != 0)
		fail_msg("command failed (%d): %s", rc, cmd);
	free(cmd);
}

int
tmpfx_setup(void **state)
{
	*state = tmpfx_dir(tmpfx_name());
	return 0;
}

int
tmpfx_teardown(void **state)
{
	tmpfx_remove(*state);
	free(*state);
	return 0;
}
