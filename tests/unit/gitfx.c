/* tests/unit/gitfx.c: real git repositories for unit tests (gitfx.h). */
#include "gitfx.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tmpfx.h"
#include "util/xalloc.h"

static char *
gitfx_vfmt(const char *fmt, va_list ap)
{
	char *cmd;

	assert_true(vasprintf(&cmd, fmt, ap) > 0);
	return cmd;
}

void
gitfx_sh(const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	int rc;

	va_start(ap, fmt);
	cmd = gitfx_vfmt(fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc != 0)
		fail_msg("command failed (%d): %s", rc, cmd);
	free(cmd);
}

char *
gitfx_sh_out(const char *fmt, ...)
{
	va_list ap;
	char *cmd, *line = NULL;
	size_t cap = 0;
	FILE *p;

	va_start(ap, fmt);
	cmd = gitfx_vfmt(fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	assert_non_null(p);
	if (getline(&line, &cap, p) < 0) {
		free(line);
		line = xstrdup("");
	}
	if (pclose(p) != 0)
		fail_msg("command failed: %s", cmd);
	free(cmd);
	line[strcspn(line, "\n")] = '\0';
	return line;
}

struct gitfx *
gitfx_new(const char *name)
{
	struct gitfx *f = xcalloc(1, sizeof(*f));
	f->root = tmpfx_dir(name);
	f->state = xasprintf("%s/state", f->root);
	f->work = xasprintf("%s/work", f->root);
	f->origin = xasprintf("%s/origin.git", f->root);
	f->url = xasprintf("file://%s", f->origin);
	gitfx_sh("mkdir '%s' && git init -q --bare -b main '%s' && git init -q -b main '%s' && "
	         "git -C '%s' config user.email t@example.com && git -C '%s' config user.name t && "
	         "git -C '%s' remote add origin '%s'",
	         f->state, f->origin, f->work, f->work, f->work, f->work, f->origin);
	return f;
}

void
gitfx_free(struct gitfx *f)
{
	if (f == NULL)
		return;
	tmpfx_remove(f->root);
	free(f->root);
	free(f->state);
	free(f->work);
	free(f->origin);
	free(f->url);
	free(f);
}

int
gitfx_setup(void **state)
{
	*state = gitfx_new(tmpfx_name());
	return 0;
}

int
gitfx_teardown(void **state)
{
	gitfx_free(*state);
	return 0;
}

char *
gitfx_commit_push(const struct gitfx *f, const char *file, const char *text)
{
	gitfx_sh("cd '%s' && printf '%%s\\n' '%s' > '%s' && git add -A && git commit -qm '%s' && "
	         "git push -q origin HEAD 2>/dev/null",
	         f->work, text, file, text);
	return gitfx_sh_out("git -C '%s' rev-parse HEAD", f->work);
}
