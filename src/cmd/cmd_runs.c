/* placeholder: being written */
#include <stdio.h>

#include "cmd/cmd.h"

static int
cmd_runs_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	fprintf(stderr, "eph runs: not built yet\n");
	return EPH_EXIT_FAIL;
}

const struct cmd cmd_runs = {
	.name = "runs",
	.usage = "runs",
	.summary = "(being written)",
	.exec = cmd_runs_exec,
};
