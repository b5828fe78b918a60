/* src/cmd/cmd.c: what every command shares: usage, loading the jobs file, the state dir. */
#include "cmd/cmd.h"

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "conf/conf.h"
#include "util/diag.h"
#include "util/xalloc.h"

void
cmd_usage(const struct cmd *c, FILE *f, bool full)
{
	const char *p = c->usage;
	bool first = true;

	while (*p != '\0') {
		const char *nl = p;

		while (*nl != '\0' && *nl != '\n')
			nl++;
		fprintf(f, "%s eph %.*s\n", first ? "usage:" : "      ", (int)(nl - p), p);
		first = false;
		p = *nl == '\n' ? nl + 1 : nl;
	}
	if (full) {
		fprintf(f, "\n%s.\n", c->summary);
		if (c->help != NULL)
			fprintf(f, "\n%s", c->help);
	}
}

int
cmd_usage_error(const struct cmd *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "eph %s: ", c->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cmd_usage(c, stderr, false);
	return EPH_EXIT_USAGE;
}

int
cmd_load_conf(struct cmd_ctx *ctx)
{
	struct diag d;
	int rc;

	if (ctx->conf != NULL)
		return EPH_EXIT_OK;
	diag_init(&d);
	rc = conf_load(ctx->conf_path, &ctx->conf, &d);
	if (rc < 0) {
		diag_print(&d, stderr);
		diag_free(&d);
		return EPH_EXIT_USAGE;
	}
	diag_free(&d);
	return EPH_EXIT_OK;
}

const char *
cmd_state_dir(struct cmd_ctx *ctx)
{
	const char *s;

	if (ctx->state_dir != NULL)
		return ctx->state_dir;
	if ((s = getenv("EPH_STATE")) != NULL && *s != '\0')
		ctx->state_dir = xstrdup(s);
	else if ((s = getenv("XDG_STATE_HOME")) != NULL && *s == '/')
		ctx->state_dir = xasprintf("%s/ephemeron", s);
	else if (geteuid() == 0)
		ctx->state_dir = xstrdup("/var/lib/ephemeron");
	else if ((s = getenv("HOME")) != NULL && *s == '/')
		ctx->state_dir = xasprintf("%s/.local/state/ephemeron", s);
	else
		ctx->state_dir = xstrdup(".ephemeron");
	if (ctx->state_dir[0] != '/') {
		/* absolute from here on: run directories, the agent's RUN_DIR and spec.json's
		 * state_dir must not depend on the directory a process runs in */
		char *cwd = getcwd(NULL, 0);

		if (cwd != NULL) {
			char *abs = xasprintf("%s/%s", cwd, ctx->state_dir);

			free(ctx->state_dir);
			ctx->state_dir = abs;
		}
		free(cwd);
	}
	return ctx->state_dir;
}
