/* placeholder: being written */
#include <stdio.h>

#include "cmd/cmd.h"

static int
cmd_agent_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	fprintf(stderr, "eph agent: not built yet\n");
	return EPH_EXIT_FAIL;
}

const struct cmd cmd_agent = {
	.name = "agent",
	.usage = "agent",
	.summary = "(being written)",
	.exec = cmd_agent_exec,
};
