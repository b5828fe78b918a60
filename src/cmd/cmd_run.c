/* placeholder: being written */
#include <stdio.h>

#include "cmd/cmd.h"

static int
cmd_run_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	fprintf(stderr, "eph run: not built yet\n");
	return EPH_EXIT_FAIL;
}

const struct cmd cmd_run = {
	.name = "run",
	.usage = "run",
	.summary = "(being written)",
	.exec = cmd_run_exec,
};
