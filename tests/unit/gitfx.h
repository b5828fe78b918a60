/* tests/unit/gitfx.h: a fixture for unit tests that need real git repositories: a temporary
 * directory holding a state directory, a bare repository standing for the remote, and a work
 * tree whose commits are pushed to it. The tests drive git through system(); the code under
 * test never uses a shell. */
#ifndef EPH_TESTS_GITFX_H
#define EPH_TESTS_GITFX_H

#include "util/attr.h"

struct gitfx {
	char *root;   /* the temporary directory */
	char *state;  /* ROOT/state */
	char *work;   /* ROOT/work: where commits are made and pushed from */
	char *origin; /* ROOT/origin.git: the "remote" */
	char *url;    /* file://ROOT/origin.git */
};

/* Runs a shell command; fails the test when it does not exit 0. */
void gitfx_sh(const char *fmt, ...) EPH_PRINTF(1, 2);
/* The first line of a shell command's output, without its newline; caller frees. Fails the
 * test when the command does not exit 0. */
char *gitfx_sh_out(const char *fmt, ...) EPH_PRINTF(1, 2);
/* Makes the fixture in a new /tmp/eph-test-NAME-XXXXXX (branch main, an identity set in the
 * work tree). Free it with gitfx_free. */
struct gitfx *gitfx_new(const char *name);
/* Removes the directory (read-only trees too) and frees F; NULL is fine. */
void gitfx_free(struct gitfx *f);
/* cmocka group or test setup: *STATE = gitfx_new(tmpfx_name()), the test program's name. */
int gitfx_setup(void **state);
/* The teardown of gitfx_setup: gitfx_free(*STATE). */
int gitfx_teardown(void **state);
/* Writes TEXT and a newline into FILE of the work tree, commits it (message TEXT) and pushes
 * the current branch; returns the commit (caller frees). */
char *gitfx_commit_push(const struct gitfx *f, const char *file, const char *text);

#endif
