/* tests/unit/tmpfx.h: temporary directories for unit tests, and the cmocka setup and teardown
 * of the tests whose state is one such directory. */
#ifndef EPH_TESTS_TMPFX_H
#define EPH_TESTS_TMPFX_H

/* The test program's name without its "test_" ("runlock" for test_runlock). */
const char *tmpfx_name(void);
/* Makes a new directory /tmp/eph-test-NAME-XXXXXX and returns its path (caller frees); fails the
 * test when it cannot. */
char *tmpfx_dir(const char *name);
/* Removes DIR and all under it, read-only trees too; fails the test when it cannot. */
void tmpfx_remove(const char *dir);
/* cmocka group or test setup: *STATE = tmpfx_dir(tmpfx_name()). */
int tmpfx_setup(void **state);
/* The teardown of tmpfx_setup: removes the directory *STATE and frees it. */
int tmpfx_teardown(void **state);

#endif
