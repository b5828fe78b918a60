/* placeholder: being written */
#include <stdio.h>

#include "cmd/cmd.h"

static int
cmd_show_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	fprintf(stderr, "eph show: not built yet\n");
	return EPH_EXIT_FAIL;
}

const struct cmd cmd_show = {
	.name = "show",
	.usage = "show",
	.summary = "(being written)",
	.exec = cmd_show_exec,
};
