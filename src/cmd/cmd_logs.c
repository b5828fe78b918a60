/* placeholder: being written */
#include <stdio.h>

#include "cmd/cmd.h"

static int
cmd_logs_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	fprintf(stderr, "eph logs: not built yet\n");
	return EPH_EXIT_FAIL;
}

const struct cmd cmd_logs = {
	.name = "logs",
	.usage = "logs",
	.summary = "(being written)",
	.exec = cmd_logs_exec,
};
